"""Sample records for rendering tests: a customer and a customer card."""

from __future__ import annotations

from crm.models import Channel, Customer, Deal, Direction, FollowUp, User, utcnow
from crm.services.customers import CustomerCard, InteractionPreview


def sample_customer(**kw):
    return Customer(id=kw.pop("id", 7), name=kw.pop("name", "Acme"), name_key="acme", **kw)


def sample_card(
    c: Customer, owner: User | None, deals: list[Deal], *, text: str, note: str
) -> CustomerCard:
    """A card with one recent interaction whose preview is ``text``."""
    return CustomerCard(
        customer=c,
        owner=owner,
        contacts=[],
        open_deals=deals,
        recent_interactions=[
            InteractionPreview(
                id=1,
                occurred_at=utcnow(),
                channel=Channel.email,
                direction=Direction.inbound,
                subject=None,
                preview=text,
            )
        ],
        next_follow_up=FollowUp(id=1, customer_id=7, due_at=utcnow(), note=note),
        last_touch_at=utcnow(),
    )
