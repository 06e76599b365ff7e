"""Reading what analytics stored: a customer's segment and churn risk, the at-risk list, segment sizes.

Writers live in ``crm.analytics``; every reader here looks at the latest finished run and,
where change matters, the run before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased, defer
from sqlmodel import Session, col, select

from crm.models import AnalyticsRun, ChurnScore, Customer, CustomerSegment, Finding


@dataclass(frozen=True)
class Insight:
    segment: str | None
    cluster_name: str | None
    churn_probability: float | None
    risk_level: str | None
    reasons: list[str]
    method: str | None
    scored_at: datetime | None
    previous_probability: float | None = None


@dataclass(frozen=True)
class AtRisk:
    customer: Customer
    score: ChurnScore
    previous_probability: float | None


@dataclass(frozen=True)
class SegmentCount:
    segment: str
    customers: int
    previous: int | None


def finished_runs(session: Session, kind: str = "refresh", limit: int = 2) -> list[AnalyticsRun]:
    """The latest finished runs, newest first; their model metadata loads only if read."""
    stmt = (
        select(AnalyticsRun)
        .options(defer(AnalyticsRun.meta))  # type: ignore[arg-type]
        .where(AnalyticsRun.kind == kind, AnalyticsRun.status == "done")
        .order_by(col(AnalyticsRun.finished_at).desc(), col(AnalyticsRun.id).desc())
        .limit(limit)
    )
    return list(session.exec(stmt))


def latest_run(session: Session, kind: str = "refresh") -> AnalyticsRun | None:
    runs = finished_runs(session, kind, 1)
    return runs[0] if runs else None


def _nth_latest_run(n: int) -> sa.ScalarSelect[Any]:
    return (
        sa.select(col(AnalyticsRun.id))
        .where(col(AnalyticsRun.kind) == "refresh", col(AnalyticsRun.status) == "done")
        .order_by(col(AnalyticsRun.finished_at).desc(), col(AnalyticsRun.id).desc())
        .offset(n)
        .limit(1)
        .scalar_subquery()
    )


def _customer_insight_statement() -> sa.Select[Any]:
    """The latest finished run with the customer's segment and score in it and their score in
    the run before: one row if any run has finished, none otherwise."""
    segment, score, previous = aliased(CustomerSegment), aliased(ChurnScore), aliased(ChurnScore)
    customer: Any = sa.bindparam("customer_id")
    return (
        sa.select(  # type: ignore[call-overload]
            AnalyticsRun.finished_at,
            segment.id,
            segment.rfm_segment,
            segment.cluster_name,
            score.id,
            score.probability,
            score.risk_level,
            score.reasons,
            score.method,
            previous.probability,
        )
        .select_from(AnalyticsRun)
        .outerjoin(
            segment, sa.and_(segment.run_id == AnalyticsRun.id, segment.customer_id == customer)
        )
        .outerjoin(score, sa.and_(score.run_id == AnalyticsRun.id, score.customer_id == customer))
        .outerjoin(
            previous,
            sa.and_(previous.run_id == _nth_latest_run(1), previous.customer_id == customer),
        )
        .where(AnalyticsRun.id == _nth_latest_run(0))
    )


_CUSTOMER_INSIGHT = _customer_insight_statement()


def customer_insight_and_scored(session: Session, customer_id: int) -> tuple[Insight | None, bool]:
    """(The customer's segment and risk from the latest run, or None if it has none for them;
    whether any scoring run has finished at all), read in one query: a card shows both."""
    row = session.execute(_CUSTOMER_INSIGHT, {"customer_id": customer_id}).first()
    if row is None:
        return None, False
    finished_at, segment_id, rfm, cluster, score_id, probability, level, reasons, method, before = (
        row
    )
    if segment_id is None and score_id is None:
        return None, True
    return (
        Insight(
            segment=rfm,
            cluster_name=cluster,
            churn_probability=probability,
            risk_level=level,
            reasons=list(reasons or []),
            method=method,
            scored_at=finished_at,
            previous_probability=before,
        ),
        True,
    )


def customer_insight(session: Session, customer_id: int) -> Insight | None:
    """The customer's segment and risk from the latest run; None when nothing is scored yet."""
    return customer_insight_and_scored(session, customer_id)[0]


def at_risk_customers(
    session: Session, *, limit: int = 10, owner_id: int | None = None, min_level: str = "medium"
) -> list[AtRisk]:
    """Customers with the highest churn risk in the latest run (optionally one owner's)."""
    runs = finished_runs(session)
    if not runs:
        return []
    levels = {"low": ["low", "medium", "high"], "medium": ["medium", "high"], "high": ["high"]}[
        min_level
    ]
    stmt = (
        select(ChurnScore, Customer)
        .join(Customer, col(Customer.id) == ChurnScore.customer_id)
        .where(ChurnScore.run_id == runs[0].id, col(ChurnScore.risk_level).in_(levels))
        .order_by(col(ChurnScore.probability).desc(), col(ChurnScore.customer_id))
        .limit(limit)
    )
    if owner_id is not None:
        stmt = stmt.where(Customer.owner_id == owner_id)
    rows = list(session.exec(stmt))
    previous: dict[int, float] = {}
    if len(runs) > 1 and rows:
        ids = [score.customer_id for score, _ in rows]
        previous = dict(
            session.exec(
                select(ChurnScore.customer_id, ChurnScore.probability).where(
                    ChurnScore.run_id == runs[1].id, col(ChurnScore.customer_id).in_(ids)
                )
            ).all()
        )
    return [
        AtRisk(customer=c, score=s, previous_probability=previous.get(s.customer_id))
        for s, c in rows
    ]


def count_at_risk(session: Session, *, min_probability: float, owner_id: int | None = None) -> int:
    """How many customers the latest run scored at or above ``min_probability``."""
    run = latest_run(session)
    if run is None:
        return 0
    stmt = (
        sa.select(sa.func.count())
        .select_from(ChurnScore)
        .where(ChurnScore.run_id == run.id, ChurnScore.probability >= min_probability)
    )
    if owner_id is not None:
        stmt = stmt.join(Customer, Customer.id == ChurnScore.customer_id).where(
            Customer.owner_id == owner_id
        )
    return int(session.execute(stmt).scalar_one())


def risk_risers(
    session: Session, *, min_rise: float, limit: int = 50, owner_id: int | None = None
) -> list[AtRisk]:
    """Customers whose churn probability rose by at least ``min_rise`` between the two latest runs."""
    runs = finished_runs(session)
    if len(runs) < 2:
        return []
    new, old = sa.orm.aliased(ChurnScore), sa.orm.aliased(ChurnScore)
    rise = new.probability - old.probability
    stmt = (
        select(new, Customer, old.probability)
        .join(old, sa.and_(old.customer_id == new.customer_id, old.run_id == runs[1].id))
        .join(Customer, col(Customer.id) == new.customer_id)
        .where(new.run_id == runs[0].id, rise >= min_rise)
        .order_by(rise.desc(), new.customer_id)
        .limit(limit)
    )
    if owner_id is not None:
        stmt = stmt.where(Customer.owner_id == owner_id)
    return [
        AtRisk(customer=c, score=score, previous_probability=before)
        for score, c, before in session.exec(stmt)
    ]


def segment_counts(session: Session) -> list[SegmentCount]:
    """Customers per RFM segment in the latest run, with the previous run's count."""
    runs = finished_runs(session)
    if not runs:
        return []

    def counts(run_id: int) -> dict[str, int]:
        stmt = (
            sa.select(CustomerSegment.rfm_segment, sa.func.count())
            .where(CustomerSegment.run_id == run_id)
            .group_by(CustomerSegment.rfm_segment)
        )
        return {segment: int(n) for segment, n in session.execute(stmt)}

    now = counts(runs[0].id)  # type: ignore[arg-type]
    before = counts(runs[1].id) if len(runs) > 1 else None  # type: ignore[arg-type]
    return [
        SegmentCount(segment=s, customers=n, previous=None if before is None else before.get(s, 0))
        for s, n in sorted(now.items(), key=lambda kv: -kv[1])
    ]


def segment_moves(session: Session) -> list[tuple[str, str, int]]:
    """(from segment, to segment, customers) between the two latest runs, largest first."""
    runs = finished_runs(session)
    if len(runs) < 2:
        return []
    new, old = sa.orm.aliased(CustomerSegment), sa.orm.aliased(CustomerSegment)
    stmt = (
        sa.select(old.rfm_segment, new.rfm_segment, sa.func.count())
        .join(old, sa.and_(old.customer_id == new.customer_id, old.run_id == runs[1].id))
        .where(new.run_id == runs[0].id, old.rfm_segment != new.rfm_segment)
        .group_by(old.rfm_segment, new.rfm_segment)
        .order_by(sa.func.count().desc())
    )
    return [(a, b, int(n)) for a, b, n in session.execute(stmt)]


def finding_counts(session: Session) -> dict[int | None, dict[str, int]]:
    """Everything the follow-up rules flagged in the latest run, per owner (None: nobody) and
    kind: a run stores only each owner's most urgent findings, and counts the rest."""
    run = latest_run(session)
    if run is None:
        return {}
    flagged = (run.meta or {}).get("findings", {}).get("flagged")
    out: dict[int | None, dict[str, int]] = {}
    if flagged is not None:
        for kind, per_owner in flagged.items():
            for owner, n in per_owner.items():
                out.setdefault(None if owner == "none" else int(owner), {})[kind] = int(n)
        return out
    # A run from before the counts were kept stored every finding.
    rows = session.execute(
        sa.select(Finding.owner_id, Finding.kind, sa.func.count())
        .where(Finding.run_id == run.id)
        .group_by(Finding.owner_id, Finding.kind)
    )
    for owner, kind, n in rows:
        out.setdefault(owner, {})[kind] = int(n)
    return out


def findings_for(
    session: Session, *, owner_id: int | None = None, limit: int = 100
) -> list[Finding]:
    """What the follow-up rules found in the latest run (optionally one owner's), most severe first."""
    run = latest_run(session)
    if run is None:
        return []
    stmt = select(Finding).where(Finding.run_id == run.id)
    if owner_id is not None:
        stmt = stmt.where(Finding.owner_id == owner_id)
    stmt = stmt.order_by(col(Finding.severity).desc(), col(Finding.since), col(Finding.id)).limit(
        limit
    )
    return list(session.exec(stmt))
