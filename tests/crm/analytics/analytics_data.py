"""Hand-built analytics data: rows with exact times, written straight into the tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

from crm.db import Database
from crm.models import (
    Channel,
    Customer,
    Deal,
    DealStatus,
    Direction,
    FollowUp,
    FollowUpStatus,
    Interaction,
)

CUTOFF = datetime(2026, 6, 1, tzinfo=UTC)
_ids = count()


def days(n: float) -> datetime:
    """n days before the cutoff (negative: after it)."""
    return CUTOFF - timedelta(days=n)


def customer(
    db: Database, name: str, created: datetime, status: str = "active", owner_id: int | None = None
) -> int:
    with db.transaction() as session:
        c = Customer(name=name, status=status, created_at=created, owner_id=owner_id)  # type: ignore[arg-type]
        session.add(c)
        session.flush()
        return int(c.id)  # type: ignore[arg-type]


def interaction(
    db: Database,
    customer_id: int,
    when: datetime,
    channel: Channel,
    direction: Direction,
    amount: str | None = None,
    deleted: bool = False,
    deal_id: int | None = None,
    thread_key: str | None = None,
) -> None:
    with db.transaction() as session:
        session.add(
            Interaction(
                customer_id=customer_id,
                channel=channel,
                direction=direction,
                occurred_at=when,
                amount=Decimal(amount) if amount else None,
                source="test",
                external_id=f"t{next(_ids)}",
                deleted_at=when if deleted else None,
                deal_id=deal_id,
                thread_key=thread_key,
            )
        )


def purchase(db: Database, customer_id: int, when: datetime, amount: str = "10") -> None:
    interaction(db, customer_id, when, Channel.purchase, Direction.inbound, amount)


def deal(
    db: Database,
    customer_id: int,
    created: datetime,
    status: DealStatus,
    amount: str,
    closed: datetime | None = None,
    stage: str = "proposal",
) -> int:
    with db.transaction() as session:
        d = Deal(
            customer_id=customer_id,
            title=f"deal {next(_ids)}",
            amount=Decimal(amount),
            stage=stage,
            status=status,
            created_at=created,
            stage_entered_at=created,
            closed_at=closed,
        )
        session.add(d)
        session.flush()
        return int(d.id)  # type: ignore[arg-type]


def follow_up(
    db: Database,
    customer_id: int,
    due: datetime,
    created: datetime,
    done_at: datetime | None = None,
) -> int:
    with db.transaction() as session:
        f = FollowUp(
            customer_id=customer_id,
            due_at=due,
            created_at=created,
            status=FollowUpStatus.done if done_at else FollowUpStatus.open,
            completed_at=done_at,
            note="call back",
        )
        session.add(f)
        session.flush()
        return int(f.id)  # type: ignore[arg-type]
