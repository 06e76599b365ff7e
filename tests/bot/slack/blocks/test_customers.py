"""The customer card."""

from __future__ import annotations

from decimal import Decimal

from bot.slack.blocks.base import MAX_MESSAGE_BLOCKS
from bot.slack.blocks.customers import customer_card
from crm.models import Deal
from tests.bot.slack.blocks.samples import sample_card, sample_customer


def test_card_with_huge_user_text_stays_within_limits():
    long = "<b>" + "z" * 5000
    c = sample_customer(name="N" * 200, company=long)
    deals = [
        Deal(id=i, customer_id=7, title=long[:200], stage="lead", amount=Decimal("1"))
        for i in range(40)
    ]
    card = sample_card(c, None, deals, text=long, note=long[:2000])
    out = customer_card(card, None, tz="Europe/Berlin", scored=False)
    assert len(out["blocks"]) <= MAX_MESSAGE_BLOCKS
    text = str(out["blocks"])
    assert "<b>" not in text and "&lt;b&gt;" in text
    assert "and 30 more" in text
