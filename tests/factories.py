"""Small factories for test data, built through the services."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from crm.config import Settings
from crm.db import Database
from crm.models import (
    AnalyticsRun,
    ChurnScore,
    Customer,
    CustomerCreate,
    CustomerSegment,
    Deal,
    DealCreate,
    FollowUp,
    utcnow,
)
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


def add_scoring_run(
    db: Database,
    customer_ids: Sequence[int],
    probabilities: Sequence[float],
    *,
    finished: datetime,
    values: Sequence[float] | None = None,
    reasons: Sequence[list[str]] | None = None,
    segments: Mapping[int, str] | None = None,
    never_bought: Collection[int] = (),
) -> int:
    """A finished analytics run scoring these customers (risk level from the default thresholds),
    each in a segment ("Loyal" by default); those in ``never_bought`` are Prospects scored 0, as
    the segmentation scores customers who never bought. Returns the run's id."""
    with db.transaction() as session:
        run = AnalyticsRun(cutoff=finished, status="done", finished_at=finished)
        session.add(run)
        session.flush()
        for n, (cid, p) in enumerate(zip(customer_ids, probabilities, strict=True)):
            session.add(
                ChurnScore(
                    run_id=run.id,
                    customer_id=cid,
                    probability=p,
                    risk_level="high" if p >= 0.6 else "medium" if p >= 0.3 else "low",
                    value_at_stake=1200.0 if values is None else values[n],
                    reasons=["no outreach from us in 40 days"] if reasons is None else reasons[n],
                )
            )
            bought = cid not in never_bought
            session.add(
                CustomerSegment(
                    run_id=run.id,
                    customer_id=cid,
                    recency_score=3 * bought,
                    frequency_score=3 * bought,
                    monetary_score=3 * bought,
                    rfm_segment=(segments or {}).get(cid, "Loyal") if bought else "Prospect",
                )
            )
        return run.id  # type: ignore[return-value]
