"""Forms and their type-ahead options."""

from __future__ import annotations

from bot.slack.blocks.customers import customer_option
from bot.slack.blocks.forms import option_list
from tests.bot.slack.blocks.samples import sample_customer


def test_options_are_capped_and_labels_shortened():
    many = [customer_option(sample_customer(id=i, name="Q" * 100)) for i in range(150)]
    out = option_list(many)
    assert len(out["options"]) == 100
    assert all(len(o["text"]["text"]) <= 75 for o in out["options"])
