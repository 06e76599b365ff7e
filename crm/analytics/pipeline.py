"""Pipeline statistics: stage sizes, stage-to-stage conversion, time in stage, forecast, win rates.

Also the open deals as the follow-up rules (``crm.analytics.followups``) read them: the analytics
refresh and the App Home load them with the same ``deal_records`` and apply the same rules.

Everything is aggregated in the database (GROUP BY, window functions) so it costs the same
whether there are a hundred deals or a million; Python only combines the few result rows.
The SQL is portable between SQLite and PostgreSQL (no ``percentile_cont``, no ``GREATEST``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from crm.analytics import followups
from crm.config import LOST_STAGE, WON_STAGE, Settings
from crm.models import (
    Deal,
    DealStageChange,
    DealStatus,
    FollowUp,
    Interaction,
    User,
)
from crm.models.base import UTCDateTime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageStats:
    stage: str
    count: int
    # Open value per currency: amounts in different currencies are never added together.
    value: dict[str, Decimal]
    weighted: dict[str, Decimal]
    probability: Decimal
    # Deals that reached this stage, and the share of them that went on to the next one.
    reached: int = 0
    conversion_to_next: float | None = None
    median_days: float | None = None


@dataclass(frozen=True)
class OwnerWinRate:
    owner_id: int | None
    owner_name: str
    won: int
    lost: int

    @property
    def win_rate(self) -> float | None:
        closed = self.won + self.lost
        return self.won / closed if closed else None


@dataclass(frozen=True)
class PipelineReport:
    stages: list[StageStats]
    forecast: dict[str, Decimal]
    open_value: dict[str, Decimal]
    win_rates: list[OwnerWinRate]
    won: int
    lost: int
    owner_id: int | None = None
    since: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def open_deals(self) -> int:
        return sum(s.count for s in self.stages)

    @property
    def win_rate(self) -> float | None:
        closed = self.won + self.lost
        return self.won / closed if closed else None


def _days_between(dialect: str, start: sa.ColumnElement, end: sa.ColumnElement) -> sa.ColumnElement:
    """Days from ``start`` to ``end`` as a float, in the dialect's own date arithmetic."""
    if dialect == "sqlite":
        return sa.func.julianday(end) - sa.func.julianday(start)
    return sa.extract("epoch", end - start) / 86400.0


def stage_counts(
    session: Session, *, owner_id: int | None = None
) -> dict[str, dict[str, tuple[int, Decimal]]]:
    """Open deals per stage and currency: {stage: {currency: (count, value)}}."""
    stmt = (
        sa.select(Deal.stage, Deal.currency, sa.func.count(), sa.func.sum(Deal.amount))
        .where(Deal.status == DealStatus.open)
        .group_by(Deal.stage, Deal.currency)
    )
    if owner_id is not None:
        stmt = stmt.where(Deal.owner_id == owner_id)
    out: dict[str, dict[str, tuple[int, Decimal]]] = {}
    for stage, currency, count, total in session.execute(stmt):
        out.setdefault(stage, {})[currency] = (int(count), Decimal(str(total or 0)))
    return out


def stage_reach(
    session: Session, settings: Settings, *, owner_id: int | None = None
) -> dict[str, int]:
    """How many deals ever reached each stage (or a later one), from the stage history.

    Deals may skip stages, so reaching "proposal" counts every deal whose furthest stage is
    proposal or later; "won" counts as the last step, "lost" as no step at all.
    """
    order = [*settings.open_stages, WON_STAGE]
    rank = sa.case(
        {name: i for i, name in enumerate(order)}, value=DealStageChange.to_stage, else_=-1
    )
    furthest = sa.select(DealStageChange.deal_id, sa.func.max(rank).label("furthest")).group_by(
        DealStageChange.deal_id
    )
    if owner_id is not None:
        furthest = furthest.join(Deal, col(Deal.id) == DealStageChange.deal_id).where(
            Deal.owner_id == owner_id
        )
    sub = furthest.subquery()
    rows = session.execute(
        sa.select(sub.c.furthest, sa.func.count()).group_by(sub.c.furthest)
    ).all()
    at_rank = {int(r): int(n) for r, n in rows}
    reached: dict[str, int] = {}
    for i, name in enumerate(order):
        reached[name] = sum(n for r, n in at_rank.items() if r >= i)
    return reached


def median_days_in_stage(session: Session, *, owner_id: int | None = None) -> dict[str, float]:
    """Median days deals spent in each stage, over finished stays (the deal has moved on)."""
    dialect = session.get_bind().dialect.name
    next_change = (
        sa.func.lead(DealStageChange.changed_at)
        .over(
            partition_by=DealStageChange.deal_id,
            order_by=(DealStageChange.changed_at, DealStageChange.id),
        )
        .label("left_at")
    )
    stays = sa.select(
        DealStageChange.to_stage.label("stage"),  # type: ignore[attr-defined]
        DealStageChange.changed_at.label("entered_at"),  # type: ignore[attr-defined]
        next_change,
    )
    if owner_id is not None:
        stays = stays.join(Deal, col(Deal.id) == DealStageChange.deal_id).where(
            Deal.owner_id == owner_id
        )
    stays_sq = stays.subquery()
    days = _days_between(dialect, stays_sq.c.entered_at, stays_sq.c.left_at).label("days")
    finished = sa.select(stays_sq.c.stage, days).where(stays_sq.c.left_at.is_not(None)).subquery()
    ranked = sa.select(
        finished.c.stage,
        finished.c.days,
        sa.func.row_number()
        .over(partition_by=finished.c.stage, order_by=finished.c.days)
        .label("rn"),
        sa.func.count().over(partition_by=finished.c.stage).label("cnt"),
    ).subquery()
    # The middle row (odd count) or the two middle rows (even count), averaged.
    stmt = (
        sa.select(ranked.c.stage, sa.func.avg(ranked.c.days))
        .where(
            sa.or_(
                ranked.c.rn == (ranked.c.cnt + 1) // 2,
                ranked.c.rn == (ranked.c.cnt + 2) // 2,
            )
        )
        .group_by(ranked.c.stage)
    )
    return {stage: float(value) for stage, value in session.execute(stmt) if value is not None}


def win_rates(
    session: Session, *, since: datetime | None = None, owner_id: int | None = None
) -> list[OwnerWinRate]:
    """Won and lost deals per owner (closed since ``since``), best win rate first."""
    stmt = (
        sa.select(Deal.owner_id, User.name, Deal.status, sa.func.count())
        .select_from(Deal)
        .outerjoin(User, col(User.id) == Deal.owner_id)
        .where(col(Deal.status).in_([DealStatus.won, DealStatus.lost]))
        .group_by(Deal.owner_id, User.name, Deal.status)
    )
    if since is not None:
        stmt = stmt.where(col(Deal.closed_at) >= since)
    if owner_id is not None:
        stmt = stmt.where(Deal.owner_id == owner_id)
    tally: dict[int | None, dict[str, object]] = {}
    for owner, name, status, count in session.execute(stmt):
        entry = tally.setdefault(owner, {"name": name or "(no owner)", "won": 0, "lost": 0})
        entry[DealStatus(status).value] = int(count)
    rates = [
        OwnerWinRate(owner_id=o, owner_name=str(e["name"]), won=int(e["won"]), lost=int(e["lost"]))  # type: ignore[call-overload]
        for o, e in tally.items()
    ]
    return sorted(rates, key=lambda r: (-(r.win_rate or 0.0), -(r.won + r.lost), r.owner_name))


def pipeline_report(
    session: Session,
    *,
    settings: Settings,
    owner_id: int | None = None,
    since: datetime | None = None,
) -> PipelineReport:
    """The whole funnel: open deals per stage, conversion, time in stage, forecast, win rates."""
    counts = stage_counts(session, owner_id=owner_id)
    reached = stage_reach(session, settings, owner_id=owner_id)
    medians = median_days_in_stage(session, owner_id=owner_id)
    order = [*settings.open_stages, WON_STAGE]
    stages: list[StageStats] = []
    forecast: dict[str, Decimal] = {}
    open_value: dict[str, Decimal] = {}
    notes: list[str] = []
    for i, name in enumerate(settings.open_stages):
        probability = settings.stage_probability(name)
        per_currency = counts.pop(name, {})
        value = {cur: total for cur, (_n, total) in sorted(per_currency.items())}
        weighted = {
            cur: (total * probability).quantize(Decimal("0.01")) for cur, total in value.items()
        }
        for cur, total in value.items():
            open_value[cur] = open_value.get(cur, Decimal(0)) + total
            forecast[cur] = forecast.get(cur, Decimal(0)) + weighted[cur]
        here, nxt = reached.get(name, 0), reached.get(order[i + 1], 0)
        stages.append(
            StageStats(
                stage=name,
                count=sum(n for n, _ in per_currency.values()),
                value=value,
                weighted=weighted,
                probability=probability,
                reached=here,
                conversion_to_next=(nxt / here) if here else None,
                median_days=medians.get(name),
            )
        )
    for stray in sorted(counts):
        # Open deals in a stage no longer configured still count, but say where they are.
        n = sum(c for c, _ in counts[stray].values())
        notes.append(f"{n} open deal(s) sit in stage {stray!r}, which is not configured any more.")
    rates = win_rates(session, since=since, owner_id=owner_id)
    return PipelineReport(
        stages=stages,
        forecast=forecast,
        open_value=open_value,
        win_rates=rates,
        won=sum(r.won for r in rates),
        lost=sum(r.lost for r in rates),
        owner_id=owner_id,
        since=since,
        notes=notes,
    )


# ------------------------------------------------------------ open deals for the follow-up rules

_DEALS: sa.Table = Deal.__table__  # type: ignore[attr-defined]
_FOLLOW_UPS: sa.Table = FollowUp.__table__  # type: ignore[attr-defined]
_INTERACTIONS: sa.Table = Interaction.__table__  # type: ignore[attr-defined]


def utc_result(value: Any) -> datetime | None:
    """An aggregate's result as an aware UTC time (SQLite hands back the raw text)."""
    return UTCDateTime().process_result_value(value, None)


def rotting_limits(settings: Settings) -> dict[str, int]:
    """Days each stage may sit idle before its deals rot; won and lost never rot."""
    return {
        s.name: s.rotting_days
        for s in settings.deal_stages
        if s.name not in (WON_STAGE, LOST_STAGE)
    }


def deal_records(
    session: Session, now: datetime, *, owner_id: int | None = None
) -> list[followups.DealRecord]:
    """Open deals (of one owner, if given) as the rules see them at ``now``.

    A few grouped SQL aggregates, never every interaction row: the latest live interaction on
    each deal and on each deal's customer, and the earliest open follow-up due from ``now`` on
    the deal or its customer. Only rows before ``now`` count, so a past ``now`` replays history.
    """
    conn = session.connection()
    t = sa.literal(now, UTCDateTime())
    f, d, i = (table.c for table in (_FOLLOW_UPS, _DEALS, _INTERACTIONS))
    open_deal = sa.and_(d.status == "open", d.created_at < t)
    if owner_id is not None:
        open_deal = sa.and_(open_deal, d.owner_id == owner_id)
    deal_ids = sa.select(d.id).where(open_deal)
    customer_ids = sa.select(d.customer_id).where(open_deal)
    live = sa.and_(i.occurred_at < t, i.deleted_at.is_(None))

    def latest_interaction(key: Any, among: Any) -> dict[int, datetime | None]:
        rows = conn.execute(
            sa.select(key, sa.func.max(i.occurred_at)).where(key.in_(among), live).group_by(key)
        )
        return {k: utc_result(v) for k, v in rows}

    on_deal = latest_interaction(i.deal_id, deal_ids)
    on_customer = latest_interaction(i.customer_id, customer_ids)
    next_steps = conn.execute(
        sa.select(f.customer_id, f.deal_id, sa.func.min(f.due_at).label("due"))
        .where(
            f.status != "done",
            f.due_at >= t,
            f.created_at < t,
            sa.or_(f.customer_id.in_(customer_ids), f.deal_id.in_(deal_ids)),
        )
        .group_by(f.customer_id, f.deal_id)
    ).all()
    by_customer: dict[int, datetime] = {}
    by_deal: dict[int, datetime] = {}
    for row in next_steps:
        due = utc_result(row.due)
        if due is None:
            continue
        if row.deal_id is not None:
            by_deal[row.deal_id] = min(due, by_deal.get(row.deal_id, due))
        by_customer[row.customer_id] = min(due, by_customer.get(row.customer_id, due))
    deals = []
    for r in conn.execute(
        sa.select(
            d.id,
            d.customer_id,
            d.owner_id,
            d.title,
            d.stage,
            d.stage_entered_at,
            d.expected_close_date,
        )
        .where(open_deal)
        .order_by(d.id)
    ):
        activity = [a for a in (on_deal.get(r.id), on_customer.get(r.customer_id)) if a]
        step = [s for s in (by_deal.get(r.id), by_customer.get(r.customer_id)) if s is not None]
        deals.append(
            followups.DealRecord(
                id=r.id,
                customer_id=r.customer_id,
                owner_id=r.owner_id,
                title=r.title,
                stage=r.stage,
                stage_entered_at=r.stage_entered_at,
                expected_close_date=r.expected_close_date,
                last_activity_at=max(activity) if activity else None,
                next_step_at=min(step) if step else None,
            )
        )
    return deals
