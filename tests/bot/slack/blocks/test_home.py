"""The App Home view."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from bot.slack.blocks.base import MAX_VIEW_BLOCKS
from bot.slack.blocks.home import home_view
from crm.models import Deal, FollowUp, User, utcnow


def test_home_view_with_many_items_fits_in_100_blocks():
    user = User(id=1, name="Rita", timezone="Europe/Berlin")
    deals = [
        Deal(id=i, customer_id=1, title=f"D{i}", stage="lead", amount=Decimal("5"))
        for i in range(60)
    ]
    follow_ups = [
        FollowUp(id=i, customer_id=1, due_at=utcnow() - timedelta(days=1)) for i in range(30)
    ]
    view = home_view(
        user=user,
        follow_ups=follow_ups,
        follow_up_names={1: "Acme"},
        deals=deals,
        deal_names={1: "Acme"},
        rotting={},
        at_risk_rows=[],
        scored=False,
        stages=["lead", "qualified", "won", "lost"],
    )
    assert view["type"] == "home" and len(view["blocks"]) <= MAX_VIEW_BLOCKS
    assert "and more" in str(view["blocks"])
