"""Small factories for test data, built through the services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crm.config import Settings
from crm.db import Database
from crm.models import Customer, CustomerCreate, Deal, DealCreate, FollowUp, utcnow
from crm.services import customers, deals
from crm.services.actor import Actor


def add_customer(
    db: Database,
    actor: Actor,
    name: str = "Jane Doe",
    email: str | None = "jane@acme.com",
    **extra: Any,
) -> Customer:
    with db.transaction() as session:
        return customers.create_customer(
            session, actor=actor, customer_in=CustomerCreate(name=name, email=email, **extra)
        )


def add_deal(
    db: Database,
    actor: Actor,
    settings: Settings,
    customer_id: int,
    title: str = "Team plan",
    **extra: Any,
) -> Deal:
    with db.transaction() as session:
        return deals.open_deal(
            session,
            actor=actor,
            settings=settings,
            deal_in=DealCreate(customer_id=customer_id, title=title, **extra),
        )


def add_follow_up(
    db: Database, customer_id: int, owner_id: int | None, days: float = -1, note: str = "call back"
) -> FollowUp:
    """A follow-up due ``days`` from now (overdue by default), stored directly."""
    with db.transaction() as session:
        follow_up = FollowUp(
            customer_id=customer_id,
            owner_id=owner_id,
            due_at=utcnow() + timedelta(days=days),
            note=note,
        )
        session.add(follow_up)
        session.flush()
        return follow_up
