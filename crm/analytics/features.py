"""Per-customer features at a cutoff time, built from SQL aggregates.

Everything is a ``GROUP BY customer_id`` in the database with the cutoff (and the window
bounds derived from it) bound as parameters, so the same code builds today's features and
the features of a past cutoff for training labels. Only rows strictly before the cutoff are
read: nothing that happened at or after it can leak in. Rows come back one per customer, in
chunks, as numbers (times as days since 1970), never as one Python object per interaction.

SQLite keeps timestamps as ISO text in UTC and money as REAL; PostgreSQL as ``timestamp``
(UTC) and ``numeric``. ``_epoch_days`` turns either into a float and sums are cast to float,
so both backends return the same frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from crm.models import Channel, Customer, Deal, Direction, FollowUp, Interaction
from crm.models.base import UTCDateTime

logger = logging.getLogger(__name__)

# The tables behind the models (SQLModel does not type ``__table__``).
INTERACTIONS: sa.Table = Interaction.__table__  # type: ignore[attr-defined]
CUSTOMERS: sa.Table = Customer.__table__  # type: ignore[attr-defined]
DEALS: sa.Table = Deal.__table__  # type: ignore[attr-defined]
FOLLOW_UPS: sa.Table = FollowUp.__table__  # type: ignore[attr-defined]

WINDOWS = (30, 90, 365)
CHANNELS = tuple(c.value for c in Channel)
CHUNK_ROWS = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Columns the models learn from (identifiers, owner and raw times stay out).
MODEL_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "purchase_days",
    "monetary",
    "purchase_value",
    "won_value",
    "tenure_days",
    "first_purchase_days",
    "avg_purchase_gap_days",
    "overdue_ratio",
    "purchases_30",
    "purchases_90",
    "purchases_365",
    "purchases_prev_90",
    "purchase_trend",
    "value_90",
    "value_prev_90",
    "value_trend",
    "interactions_30",
    "interactions_90",
    "interactions_365",
    "interactions_prev_90",
    "interaction_trend",
    *(f"{c}_{w}" for c in CHANNELS if c != "purchase" for w in WINDOWS),
    *(f"{d}_{w}" for d in ("inbound", "outbound") for w in WINDOWS),
    "days_since_engagement",
    "days_since_inbound",
    "days_since_outbound",
    "unanswered_inbound",
    "unanswered_days",
    "open_deals",
    "won_deals",
    "lost_deals",
    "lost_deals_90",
    "open_deal_value",
    "overdue_follow_ups",
)


def _conn(bind: Session | sa.Connection) -> sa.Connection:
    return bind.connection() if isinstance(bind, Session) else bind


def _ts(value: datetime) -> sa.BindParameter[datetime]:
    # Bound through the column type so SQLite gets the same text it stores and PostgreSQL a naive UTC time.
    return sa.literal(value, UTCDateTime())


def _epoch_days(expr: Any, dialect: str) -> Any:
    """A timestamp expression as (fractional) days since 1970-01-01 UTC."""
    if dialect == "sqlite":
        return sa.func.julianday(expr) - 2440587.5
    return sa.extract("epoch", expr) / 86400.0


def _day(expr: Any, dialect: str) -> Any:
    """The calendar day (UTC) of a timestamp, for counting distinct purchase days."""
    if dialect == "sqlite":
        return sa.func.substr(expr, 1, 10)
    return sa.cast(expr, sa.Date)


def epoch_days(when: datetime) -> float:
    return (when - _EPOCH).total_seconds() / 86400.0


def read_frame(
    bind: Session | sa.Connection, stmt: sa.Select[Any], index: str = "customer_id"
) -> pd.DataFrame:
    """Run an aggregate and return its rows as a frame, fetched in chunks (server-side cursor on PostgreSQL)."""
    conn = _conn(bind)
    result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(stmt)
    keys = list(result.keys())
    parts = [pd.DataFrame.from_records(list(part), columns=keys) for part in result.partitions()]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=keys)
    for key in keys:
        if frame[key].dtype == object:
            frame[key] = pd.to_numeric(frame[key], errors="coerce")
    return frame.set_index(index)


def interaction_aggregates(dialect: str, cutoff: datetime) -> sa.Select[Any]:
    """One row per customer: counts, values and last times over the windows before ``cutoff``."""
    i = INTERACTIONS.c
    t = {w: _ts(cutoff - timedelta(days=w)) for w in (*WINDOWS, 180)}
    is_purchase = i.channel == Channel.purchase.value
    engaged = sa.or_(is_purchase, i.direction == Direction.inbound.value)
    count = sa.func.count

    def amount(cond: Any) -> Any:
        return sa.cast(sa.func.coalesce(sa.func.sum(i.amount).filter(cond), 0), sa.Float)

    def last(cond: Any) -> Any:
        return _epoch_days(sa.func.max(i.occurred_at).filter(cond), dialect)

    columns: list[Any] = [
        i.customer_id.label("customer_id"),
        count().label("interactions"),
        _epoch_days(sa.func.min(i.occurred_at), dialect).label("first_interaction_at"),
        _epoch_days(sa.func.max(i.occurred_at), dialect).label("last_interaction_at"),
        count().filter(is_purchase).label("frequency"),
        count(sa.distinct(_day(i.occurred_at, dialect))).filter(is_purchase).label("purchase_days"),
        amount(is_purchase).label("purchase_value"),
        _epoch_days(sa.func.min(i.occurred_at).filter(is_purchase), dialect).label(
            "first_purchase_at"
        ),
        last(is_purchase).label("last_purchase_at"),
        last(engaged).label("last_engaged_at"),
        last(i.direction == Direction.inbound.value).label("last_inbound_at"),
        last(i.direction == Direction.outbound.value).label("last_outbound_at"),
        count()
        .filter(is_purchase, i.occurred_at >= t[180], i.occurred_at < t[90])
        .label("purchases_prev_90"),
        amount(sa.and_(is_purchase, i.occurred_at >= t[90])).label("value_90"),
        amount(sa.and_(is_purchase, i.occurred_at >= t[180], i.occurred_at < t[90])).label(
            "value_prev_90"
        ),
        amount(sa.and_(is_purchase, i.occurred_at >= t[365])).label("value_365"),
        count()
        .filter(i.occurred_at >= t[180], i.occurred_at < t[90])
        .label("interactions_prev_90"),
    ]
    for w in WINDOWS:
        since = i.occurred_at >= t[w]
        columns.append(count().filter(since).label(f"interactions_{w}"))
        columns.append(count().filter(since, is_purchase).label(f"purchases_{w}"))
        for channel in CHANNELS:
            if channel != Channel.purchase.value:
                columns.append(count().filter(since, i.channel == channel).label(f"{channel}_{w}"))
        for direction in ("inbound", "outbound"):
            columns.append(
                count().filter(since, i.direction == direction).label(f"{direction}_{w}")
            )
    return (
        sa.select(*columns)
        .where(i.deleted_at.is_(None), i.occurred_at < _ts(cutoff))
        .group_by(i.customer_id)
    )


def unanswered_aggregates(dialect: str, cutoff: datetime, every: int = 1) -> sa.Select[Any]:
    """Inbound emails after the customer's last outbound touch: how many, and since when."""
    i = INTERACTIONS.c
    live = sa.and_(i.deleted_at.is_(None), i.occurred_at < _ts(cutoff))
    if every > 1:
        live = sa.and_(live, i.customer_id % every == 0)
    last_out = (
        sa.select(i.customer_id.label("cid"), sa.func.max(i.occurred_at).label("last_out"))
        .where(live, i.direction == Direction.outbound.value)
        .group_by(i.customer_id)
        .subquery()
    )
    return (
        sa.select(
            i.customer_id.label("customer_id"),
            sa.func.count().label("unanswered_inbound"),
            _epoch_days(sa.func.min(i.occurred_at), dialect).label("first_unanswered_at"),
        )
        .select_from(INTERACTIONS.outerjoin(last_out, last_out.c.cid == i.customer_id))
        .where(
            live,
            i.channel == Channel.email.value,
            i.direction == Direction.inbound.value,
            sa.or_(last_out.c.last_out.is_(None), i.occurred_at > last_out.c.last_out),
        )
        .group_by(i.customer_id)
    )


def deal_aggregates(dialect: str, cutoff: datetime) -> sa.Select[Any]:
    """Deals as they stood at the cutoff: a deal closed later was still open then."""
    d = DEALS.c
    c = _ts(cutoff)
    closed_before = sa.and_(d.closed_at.is_not(None), d.closed_at < c)
    is_open = sa.or_(d.closed_at.is_(None), d.closed_at >= c)
    won = sa.and_(closed_before, d.status == "won")
    lost = sa.and_(closed_before, d.status == "lost")
    return (
        sa.select(
            d.customer_id.label("customer_id"),
            sa.func.count().filter(is_open).label("open_deals"),
            sa.func.count().filter(won).label("won_deals"),
            sa.func.count().filter(lost).label("lost_deals"),
            sa.func.count()
            .filter(lost, d.closed_at >= _ts(cutoff - timedelta(days=90)))
            .label("lost_deals_90"),
            sa.cast(sa.func.coalesce(sa.func.sum(d.amount).filter(won), 0), sa.Float).label(
                "won_value"
            ),
            sa.cast(sa.func.coalesce(sa.func.sum(d.amount).filter(is_open), 0), sa.Float).label(
                "open_deal_value"
            ),
        )
        .where(d.created_at < c)
        .group_by(d.customer_id)
    )


def follow_up_aggregates(dialect: str, cutoff: datetime) -> sa.Select[Any]:
    """Follow-ups due before the cutoff and not done by then (one done later was still overdue)."""
    f = FOLLOW_UPS.c
    c = _ts(cutoff)
    not_done = sa.or_(f.status != "done", f.completed_at.is_(None), f.completed_at >= c)
    return (
        sa.select(f.customer_id.label("customer_id"), sa.func.count().label("overdue_follow_ups"))
        .where(f.created_at < c, f.due_at < c, not_done)
        .group_by(f.customer_id)
    )


def customer_base(dialect: str, cutoff: datetime) -> sa.Select[Any]:
    c = CUSTOMERS.c
    return sa.select(
        c.id.label("customer_id"),
        c.owner_id.label("owner_id"),
        (c.status == "active").label("active"),
        _epoch_days(c.created_at, dialect).label("created_at"),
    ).where(c.created_at < _ts(cutoff))


def _safe_ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return num / den.where(den > 0)


def _sampled(stmt: sa.Select[Any], column: Any, every: int) -> sa.Select[Any]:
    return stmt if every <= 1 else stmt.where(column % every == 0)


def feature_statements(dialect: str, cutoff: datetime, every: int = 1) -> dict[str, sa.Select[Any]]:
    """The aggregates behind the feature frame, by name; customers first (the frame's rows).
    ``every=n`` keeps only customers whose id is a multiple of n."""
    return {
        "customers": _sampled(customer_base(dialect, cutoff), CUSTOMERS.c.id, every),
        "interactions": _sampled(
            interaction_aggregates(dialect, cutoff), INTERACTIONS.c.customer_id, every
        ),
        "unanswered": unanswered_aggregates(dialect, cutoff, every),
        "deals": _sampled(deal_aggregates(dialect, cutoff), DEALS.c.customer_id, every),
        "follow_ups": _sampled(
            follow_up_aggregates(dialect, cutoff), FOLLOW_UPS.c.customer_id, every
        ),
    }


def build_features(
    bind: Session | sa.Connection,
    cutoff: datetime,
    *,
    customer_ids: Sequence[int] | None = None,
    every: int = 1,
) -> pd.DataFrame:
    """The feature frame (one row per customer that existed before ``cutoff``), indexed by customer id.

    ``every=n`` keeps only customers whose id is a multiple of n, inside each aggregate: a
    deterministic sample that makes training snapshots of a big database n times cheaper.
    """
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware (UTC)")
    conn = _conn(bind)
    now = epoch_days(cutoff)
    statements = feature_statements(conn.dialect.name, cutoff, every)
    base, *others = (read_frame(conn, stmt) for stmt in statements.values())
    frame = base.join(others, how="left")
    if customer_ids is not None:
        frame = frame.loc[frame.index.intersection(pd.Index(customer_ids))]
    frame = frame.sort_index()
    counts = [
        col
        for col in frame.columns
        if col not in ("owner_id", "created_at", "active") and not col.endswith("_at")
    ]
    frame[counts] = frame[counts].fillna(0)

    def since(col: str) -> pd.Series:
        return (now - frame[col]).clip(lower=0)

    first_seen = frame[["created_at", "first_interaction_at"]].min(axis=1)
    frame["tenure_days"] = (now - first_seen).clip(lower=0)
    frame["recency_days"] = since("last_purchase_at")
    frame["first_purchase_days"] = since("first_purchase_at")
    frame["days_since_engagement"] = since("last_engaged_at")
    frame["days_since_inbound"] = since("last_inbound_at")
    frame["days_since_outbound"] = since("last_outbound_at")
    frame["unanswered_days"] = since("first_unanswered_at")
    frame["monetary"] = frame["purchase_value"] + frame["won_value"]
    span = frame["first_purchase_days"] - frame["recency_days"]
    frame["avg_purchase_gap_days"] = _safe_ratio(span, frame["purchase_days"] - 1)
    # How overdue the next purchase is against the customer's own rhythm (>1: later than usual).
    frame["overdue_ratio"] = _safe_ratio(frame["recency_days"], frame["avg_purchase_gap_days"])
    frame["purchase_trend"] = _trend(frame["purchases_90"], frame["purchases_prev_90"])
    frame["value_trend"] = _trend(frame["value_90"], frame["value_prev_90"])
    frame["interaction_trend"] = _trend(frame["interactions_90"], frame["interactions_prev_90"])
    frame["engaged"] = frame["last_engaged_at"].notna()
    frame["buyer"] = frame["frequency"] > 0
    frame.attrs["cutoff"] = cutoff
    return frame


def _trend(recent: pd.Series, previous: pd.Series) -> pd.Series:
    """Relative change of the last 90 days against the 90 before (-1 = stopped, NaN = nothing before)."""
    out = (recent - previous) / previous.where(previous > 0)
    return out.astype(float)


def model_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The model's input: MODEL_FEATURES in a fixed order, NaN where a value does not exist."""
    return frame.loc[:, list(MODEL_FEATURES)].to_numpy(dtype=np.float64)


def engagement_after(
    bind: Session | sa.Connection, start: datetime, end: datetime, *, purchases_only: bool = False
) -> pd.Index:
    """Customers with a purchase or inbound message in [start, end): the churn label's complement."""
    conn = _conn(bind)
    i = INTERACTIONS.c
    cond = (
        i.channel == Channel.purchase.value
        if purchases_only
        else sa.or_(i.channel == Channel.purchase.value, i.direction == Direction.inbound.value)
    )
    stmt = (
        sa.select(i.customer_id.label("customer_id"))
        .where(i.deleted_at.is_(None), i.occurred_at >= _ts(start), i.occurred_at < _ts(end), cond)
        .group_by(i.customer_id)
    )
    result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(stmt)
    ids = np.fromiter((row[0] for row in result), dtype=np.int64)
    return pd.Index(ids, name="customer_id")


def weekly_purchases(
    bind: Session | sa.Connection, cutoff: datetime, customers: pd.Index, weeks: int = 52
) -> np.ndarray:
    """Every customer's purchases week by week before ``cutoff``: for each of the last ``weeks``
    weeks its purchase count and spend, plus both totals for everything older (one GROUP BY in
    the database). Nothing a model could learn from the purchase record is summarised away, so
    a model fitted on it bounds what any purchase-based feature set can do."""
    conn = _conn(bind)
    dialect = conn.dialect.name
    i = INTERACTIONS.c
    age = (epoch_days(cutoff) - _epoch_days(i.occurred_at, dialect)) / 7.0
    week = sa.case((age >= weeks, weeks), else_=sa.cast(sa.func.floor(age), sa.Integer))
    stmt = (
        sa.select(
            i.customer_id.label("customer_id"),
            week.label("week"),
            sa.func.count().label("n"),
            sa.cast(sa.func.coalesce(sa.func.sum(i.amount), 0), sa.Float).label("value"),
        )
        .where(
            i.deleted_at.is_(None),
            i.channel == Channel.purchase.value,
            i.occurred_at < _ts(cutoff),
        )
        .group_by(i.customer_id, week)
    )
    rows = read_frame(conn, stmt)  # one row per customer and week, indexed by customer
    out = np.zeros((len(customers), 2 * (weeks + 1)))
    pos = customers.get_indexer(rows.index.astype(np.int64))
    keep = pos >= 0
    week_of = rows["week"].to_numpy(dtype=np.int64)[keep]
    out[pos[keep], week_of] = rows["n"].to_numpy(dtype=float)[keep]
    out[pos[keep], weeks + 1 + week_of] = rows["value"].to_numpy(dtype=float)[keep]
    return out
