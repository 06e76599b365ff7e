"""Per-customer features at a cutoff time, from one columnar read of the store.

A refresh needs the features of today's cutoff for every customer, the features of several
past cutoffs for training, and who came back after each of those cutoffs (the labels). All
of them come from one read of the tables (``read_snapshot``: interactions, customers, deals
and follow-ups, each as numpy arrays, times as int64 microseconds), and every cutoff's
features are reductions over those arrays (``features_at``): counts by ``bincount`` over
(customer, age bucket, channel, direction), last and first times by ``maximum.at`` /
``minimum.at``. The database is scanned once per refresh whatever the number of cutoffs,
and no Python object is made per interaction.

Only rows strictly before a cutoff count for that cutoff's features: nothing that happened
at or after it can leak in. Times in the frame are days since 1970 (floats), as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from crm.analytics.columns import (
    NEVER_AFTER,
    NEVER_BEFORE,
    US_PER_DAY,
    Column,
    Packed,
    micros,
    read_columns,
    time_literal,
)
from crm.models import Channel, Customer, Deal, Direction, FollowUp, Interaction

logger = logging.getLogger(__name__)

# The tables behind the models (SQLModel does not type ``__table__``).
INTERACTIONS: sa.Table = Interaction.__table__  # type: ignore[attr-defined]
CUSTOMERS: sa.Table = Customer.__table__  # type: ignore[attr-defined]
DEALS: sa.Table = Deal.__table__  # type: ignore[attr-defined]
FOLLOW_UPS: sa.Table = FollowUp.__table__  # type: ignore[attr-defined]

WINDOWS = (30, 90, 365)
CHANNELS = tuple(c.value for c in Channel)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Columns the models learn from (identifiers, owner and raw times stay out).
# Survey ratings, where a customer has any (NaN otherwise).
SATISFACTION_FEATURES: tuple[str, ...] = ("satisfaction_latest", "satisfaction_mean")
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
    *SATISFACTION_FEATURES,
)


def epoch_days(when: datetime) -> float:
    return (when - _EPOCH).total_seconds() / 86400.0


Bind = Session | sa.Connection
DEAL_STATUSES = ("open", "won", "lost")
DIRECTIONS = tuple(d.value for d in Direction)
_PURCHASE = CHANNELS.index(Channel.purchase.value)
_EMAIL = CHANNELS.index(Channel.email.value)
_INBOUND = DIRECTIONS.index(Direction.inbound.value)
_OUTBOUND = DIRECTIONS.index(Direction.outbound.value)
# Age buckets (days before the cutoff, upper bound included): the windows and the quarter
# before the last one ("prev_90" = more than 90 and at most 180 days before).
_BUCKET_EDGES = (30, 90, 180, 365)


@dataclass
class Events:
    """Interactions as parallel arrays, one entry per (undeleted) interaction."""

    customer: np.ndarray  # position in Snapshot.customer_id (int64)
    at: np.ndarray  # int64 µs since 1970 UTC
    channel: np.ndarray  # int8 index into CHANNELS (-1: unknown)
    direction: np.ndarray  # int8 index into DIRECTIONS
    amount: np.ndarray  # float64, 0 when not a purchase amount

    def take(self, keep: np.ndarray) -> Events:
        return Events(*(a[keep] for a in self.__dict__.values()))


@dataclass
class Snapshot:
    """Everything the features read, as of ``until`` (rows at or after it are not read)."""

    until: datetime
    customer_id: np.ndarray  # int64, ascending
    owner_id: np.ndarray  # float64, NaN when nobody owns the customer
    active: np.ndarray  # bool
    created_at: np.ndarray  # int64 µs
    events: Events
    deals: dict[str, np.ndarray]  # customer (position), created_at, closed_at, status, amount
    follow_ups: dict[str, np.ndarray]  # customer (position), created_at, due_at, done, completed_at
    # Answered satisfaction surveys: customer (position), answered_at, rating (1-5).
    surveys: dict[str, np.ndarray] = field(default_factory=lambda: no_surveys())

    def __len__(self) -> int:
        return len(self.customer_id)

    def subset(self, keep: np.ndarray) -> Snapshot:
        """Only the customers where ``keep`` (a mask over customers) is true, with their rows."""
        renumber = np.full(len(self.customer_id) + 1, -1, dtype=np.int64)
        renumber[np.flatnonzero(keep)] = np.arange(int(keep.sum()))

        def rows(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            mine = keep[table["customer"]] if len(table["customer"]) else table["customer"] >= 0
            out = {k: v[mine] for k, v in table.items()}
            out["customer"] = renumber[out["customer"]]
            return out

        events = self.events.take(keep[self.events.customer])
        events.customer = renumber[events.customer]
        return Snapshot(
            until=self.until,
            customer_id=self.customer_id[keep],
            owner_id=self.owner_id[keep],
            active=self.active[keep],
            created_at=self.created_at[keep],
            events=events,
            deals=rows(self.deals),
            follow_ups=rows(self.follow_ups),
            surveys=rows(self.surveys),
        )


def _place(snapshot_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(snapshot_ids, ids)
    if len(snapshot_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.minimum(pos, len(snapshot_ids) - 1)
    return np.where(snapshot_ids[pos] == ids, pos, -1)


def read_snapshot(bind: Session | sa.Connection, until: datetime, *, readers: int = 1) -> Snapshot:
    """One read of each table the features need (interactions before ``until``, undeleted);
    ``readers`` connections read the interactions at once (see ``read_columns``)."""
    if until.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware (UTC)")
    conn = bind.connection() if isinstance(bind, Session) else bind
    before = time_literal(until, conn.dialect.name)
    customers = read_columns(
        conn,
        "customers",
        [Column("id", "int"), Column("owner_id", "int"), Column("status", "code", ("active",)),
         Column("created_at", "time")],
        f"created_at < {before}",
    )  # fmt: skip
    order = np.argsort(customers["id"], kind="stable")
    ids = customers["id"][order]
    interactions = read_columns(
        conn,
        "interactions",
        [Packed("who", Column("customer_id", "int"), (Column("channel", "code", CHANNELS),
                Column("direction", "code", DIRECTIONS))),
         Column("occurred_at", "time"), Column("amount", "money")],
        f"deleted_at IS NULL AND occurred_at < {before}",
        readers=readers,
    )  # fmt: skip
    where = _place(ids, interactions["customer_id"])
    seen = where >= 0  # rows of customers created after ``until`` are not theirs yet
    events = Events(
        customer=where[seen],
        at=interactions["occurred_at"][seen],
        channel=interactions["channel"][seen].astype(np.int8),
        direction=interactions["direction"][seen].astype(np.int8),
        amount=interactions["amount"][seen] / 100.0,
    )
    del interactions
    deals = read_columns(
        conn,
        "deals",
        [Column("customer_id", "int"), Column("created_at", "time"),
         Column("closed_at", "time", null=NEVER_AFTER), Column("status", "code", DEAL_STATUSES),
         Column("amount", "money")],
        f"created_at < {before}",
    )  # fmt: skip
    deals["customer"] = _place(ids, deals.pop("customer_id"))
    deals["amount"] = deals["amount"] / 100.0
    deals = {k: v[deals["customer"] >= 0] for k, v in deals.items()}
    follow_ups = read_columns(
        conn,
        "follow_ups",
        [Column("customer_id", "int"), Column("created_at", "time"), Column("due_at", "time"),
         Column("status", "code", ("done",)), Column("completed_at", "time", null=NEVER_AFTER)],
        f"created_at < {before} AND due_at < {before}",
    )  # fmt: skip
    follow_ups["customer"] = _place(ids, follow_ups.pop("customer_id"))
    follow_ups["done"] = follow_ups.pop("status") == 0
    follow_ups = {k: v[follow_ups["customer"] >= 0] for k, v in follow_ups.items()}
    surveys = read_columns(
        conn,
        "surveys",
        [Column("customer_id", "int"), Column("answered_at", "time"), Column("rating", "int")],
        f"answered_at IS NOT NULL AND rating IS NOT NULL AND answered_at < {before}",
    )  # fmt: skip
    surveys["customer"] = _place(ids, surveys.pop("customer_id"))
    surveys = {k: v[surveys["customer"] >= 0] for k, v in surveys.items()}
    owner = customers["owner_id"][order].astype(np.float64)
    owner[owner < 0] = np.nan
    return Snapshot(
        until=until,
        customer_id=ids,
        owner_id=owner,
        active=customers["status"][order] == 0,
        created_at=customers["created_at"][order],
        events=events,
        deals=deals,
        follow_ups=follow_ups,
        surveys=surveys,
    )


def _days_since(now: int, at: np.ndarray, missing: int) -> np.ndarray:
    """Days from ``at`` to ``now`` (float), NaN where ``at`` is the ``missing`` sentinel."""
    out = (now - at.astype(np.float64)) / US_PER_DAY
    out[at == missing] = np.nan
    return out


def _epoch(at: np.ndarray, missing: int) -> np.ndarray:
    out = at / US_PER_DAY
    out[at == missing] = np.nan
    return out


def features_at(snapshot: Snapshot, cutoff: datetime) -> pd.DataFrame:
    """The feature frame at ``cutoff`` (at most ``snapshot.until``): one row per customer that
    existed before it, indexed by customer id, ascending."""
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware (UTC)")
    if cutoff > snapshot.until:
        raise ValueError("the snapshot was read before this cutoff")
    c = micros(cutoff)
    existed = snapshot.created_at < c
    if not existed.all():
        snapshot = snapshot.subset(existed)
    n = len(snapshot)
    ev = snapshot.events
    if len(ev.at) and ev.at.max() >= c:
        ev = ev.take(ev.at < c)
    who = ev.customer
    age = c - ev.at
    edges = np.array([w * US_PER_DAY for w in _BUCKET_EDGES], dtype=np.int64)
    bucket = np.searchsorted(edges, age, side="left").astype(np.int64)  # 0..4
    nb, nc, nd = len(_BUCKET_EDGES) + 1, len(CHANNELS) + 1, len(DIRECTIONS) + 1
    # Unknown channel or direction (-1) counts in the totals only.
    cell = (bucket * nc + ev.channel.astype(np.int64) + 1) * nd + ev.direction.astype(np.int64) + 1
    present = np.bincount(cell, minlength=nb * nc * nd) > 0
    dense = np.cumsum(present) - 1
    kinds = np.flatnonzero(present)
    # float32 holds counts exactly up to 16M and halves the matrix (n x kinds).
    counts = np.bincount(who * len(kinds) + dense[cell], minlength=n * len(kinds))
    counts = counts.reshape(n, len(kinds)).astype(np.float32)
    k_bucket = kinds // (nc * nd)
    k_channel = (kinds // nd) % nc - 1
    k_direction = kinds % nd - 1
    # Every count column is a sum of some (bucket, channel, direction) cells: one selector
    # column each, then one matrix product gives them all.
    wanted: dict[str, np.ndarray] = {}

    def count(
        name: str, buckets: Sequence[int], channel: int | None = None, direction: int | None = None
    ) -> None:
        sel = np.isin(k_bucket, buckets)
        if channel is not None:
            sel &= k_channel == channel
        if direction is not None:
            sel &= k_direction == direction
        wanted[name] = sel

    everything = range(nb)
    window = {30: [0], 90: [0, 1], 365: [0, 1, 2, 3]}
    count("interactions", everything)
    count("frequency", everything, _PURCHASE)
    count("purchases_prev_90", [2], _PURCHASE)
    count("interactions_prev_90", [2])
    for w in WINDOWS:
        count(f"interactions_{w}", window[w])
        count(f"purchases_{w}", window[w], _PURCHASE)
        for n_channel, channel in enumerate(CHANNELS):
            if channel != Channel.purchase.value:
                count(f"{channel}_{w}", window[w], n_channel)
        count(f"inbound_{w}", window[w], direction=_INBOUND)
        count(f"outbound_{w}", window[w], direction=_OUTBOUND)
    totals = counts @ np.column_stack(list(wanted.values())).astype(np.float32)
    del counts
    is_purchase = ev.channel == _PURCHASE
    inbound = ev.direction == _INBOUND
    outbound = ev.direction == _OUTBOUND

    def latest(mask: np.ndarray | None) -> np.ndarray:
        out = np.full(n, NEVER_BEFORE, dtype=np.int64)
        np.maximum.at(
            out, who if mask is None else who[mask], ev.at if mask is None else ev.at[mask]
        )
        return out

    def earliest(mask: np.ndarray | None) -> np.ndarray:
        out = np.full(n, NEVER_AFTER, dtype=np.int64)
        np.minimum.at(
            out, who if mask is None else who[mask], ev.at if mask is None else ev.at[mask]
        )
        return out

    last_any = latest(None)
    cols: dict[str, np.ndarray] = {
        "owner_id": snapshot.owner_id.copy(),  # the frame holds its arrays: none of the snapshot's
        "active": snapshot.active.copy(),
        "created_at": snapshot.created_at / US_PER_DAY,
        "first_interaction_at": _epoch(earliest(None), NEVER_AFTER),
        "last_interaction_at": _epoch(last_any, NEVER_BEFORE),
    }
    cols |= {name: totals[:, i].astype(np.float64) for i, name in enumerate(wanted)}
    del totals
    p_who, p_at = who[is_purchase], ev.at[is_purchase]
    days_bought = np.unique((p_who << 24) | (p_at // US_PER_DAY))  # distinct (customer, day)
    cols["purchase_days"] = np.bincount(days_bought >> 24, minlength=n).astype(np.float64)
    value = np.bincount(
        p_who * nb + bucket[is_purchase], weights=ev.amount[is_purchase], minlength=n * nb
    ).reshape(n, nb)
    cols["purchase_value"] = value.sum(axis=1)
    first_purchase = earliest(is_purchase)
    cols["first_purchase_at"] = _epoch(first_purchase, NEVER_AFTER)
    last_purchase = latest(is_purchase)
    cols["last_purchase_at"] = _epoch(last_purchase, NEVER_BEFORE)
    last_inbound = latest(inbound)
    last_engaged = np.maximum(last_purchase, last_inbound)
    cols["last_engaged_at"] = _epoch(last_engaged, NEVER_BEFORE)
    cols["last_inbound_at"] = _epoch(last_inbound, NEVER_BEFORE)
    last_outbound = latest(outbound)
    cols["last_outbound_at"] = _epoch(last_outbound, NEVER_BEFORE)
    # The same times exactly (int64 µs, NEVER_BEFORE when none), for rules that compare them.
    cols["last_interaction_us"] = last_any
    cols["last_inbound_us"] = last_inbound
    cols["value_90"] = value[:, :2].sum(axis=1)
    cols["value_prev_90"] = value[:, 2]
    cols["value_365"] = value[:, :4].sum(axis=1)
    # Inbound emails after the customer's last outbound touch (any channel): unanswered.
    waiting = (ev.channel == _EMAIL) & inbound & (ev.at > last_outbound[who])
    cols["unanswered_inbound"] = np.bincount(who[waiting], minlength=n).astype(np.float64)
    cols["first_unanswered_at"] = _epoch(earliest(waiting), NEVER_AFTER)
    cols.update(_deal_columns(snapshot.deals, c, n))
    cols.update(_follow_up_columns(snapshot.follow_ups, c, n))
    cols.update(_satisfaction_columns(snapshot.surveys, c, n))
    cols.update(_derived(cols, cutoff))
    # The columns as they are, one block each: consolidating a million rows by 80 columns
    # into one block would copy them all (twice, with the derived columns added after).
    frame = pd.DataFrame(
        cols, index=pd.Index(snapshot.customer_id.copy(), name="customer_id"), copy=False
    )
    frame.attrs["cutoff"] = cutoff
    return frame


def _deal_columns(deals: dict[str, np.ndarray], c: int, n: int) -> dict[str, np.ndarray]:
    """Deals as they stood at the cutoff: a deal closed later was still open then."""
    made = deals["created_at"] < c
    who, closed, status, amount = (
        deals[k][made] for k in ("customer", "closed_at", "status", "amount")
    )
    closed_before = closed < c
    won = closed_before & (status == DEAL_STATUSES.index("won"))
    lost = closed_before & (status == DEAL_STATUSES.index("lost"))
    lost_90 = lost & (closed >= c - 90 * US_PER_DAY)

    def tally(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = None if weights is None else weights[mask]
        return np.bincount(who[mask], weights=w, minlength=n).astype(np.float64)

    return {
        "open_deals": tally(~closed_before),
        "won_deals": tally(won),
        "lost_deals": tally(lost),
        "lost_deals_90": tally(lost_90),
        "won_value": tally(won, amount),
        "open_deal_value": tally(~closed_before, amount),
    }


def _follow_up_columns(follow_ups: dict[str, np.ndarray], c: int, n: int) -> dict[str, np.ndarray]:
    """Follow-ups due before the cutoff and not done by then (one done later was still overdue)."""
    f = follow_ups
    not_done = ~f["done"] | (f["completed_at"] >= c)
    overdue = (f["created_at"] < c) & (f["due_at"] < c) & not_done
    return {
        "overdue_follow_ups": np.bincount(f["customer"][overdue], minlength=n).astype(np.float64)
    }


def no_surveys() -> dict[str, np.ndarray]:
    empty = np.zeros(0, dtype=np.int64)
    return {"customer": empty, "answered_at": empty, "rating": empty}


def _satisfaction_columns(surveys: dict[str, np.ndarray], c: int, n: int) -> dict[str, np.ndarray]:
    """The latest survey rating before the cutoff and the mean of all of them; NaN for a
    customer never rated (missing is not a low score)."""
    before = surveys["answered_at"] < c
    who, at, rating = (surveys[k][before] for k in ("customer", "answered_at", "rating"))
    latest = np.full(n, np.nan)
    mean = np.full(n, np.nan)
    if len(who):
        order = np.lexsort((at, who))  # by customer, then time: each customer's last is latest
        last = order[np.r_[np.flatnonzero(np.diff(who[order])), len(order) - 1]]
        latest[who[last]] = rating[last]
        count = np.bincount(who, minlength=n)
        total = np.bincount(who, weights=rating.astype(np.float64), minlength=n)
        rated = count > 0
        mean[rated] = total[rated] / count[rated]
    return {"satisfaction_latest": latest, "satisfaction_mean": mean}


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is not above 0 (or NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / np.where(den > 0, den, np.nan)


def _derived(cols: dict[str, np.ndarray], cutoff: datetime) -> dict[str, np.ndarray]:
    """The columns computed from the others (NaN in, NaN out)."""
    now = epoch_days(cutoff)

    def since(at: np.ndarray) -> np.ndarray:
        return np.maximum(now - at, 0.0)  # NaN stays NaN

    first_seen = np.fmin(cols["created_at"], cols["first_interaction_at"])
    extra = {
        "tenure_days": np.maximum(now - first_seen, 0.0),
        "recency_days": since(cols["last_purchase_at"]),
        "first_purchase_days": since(cols["first_purchase_at"]),
        "days_since_engagement": since(cols["last_engaged_at"]),
        "days_since_inbound": since(cols["last_inbound_at"]),
        "days_since_outbound": since(cols["last_outbound_at"]),
        "unanswered_days": since(cols["first_unanswered_at"]),
        "monetary": cols["purchase_value"] + cols["won_value"],
    }
    span = extra["first_purchase_days"] - extra["recency_days"]
    extra["avg_purchase_gap_days"] = _safe_ratio(span, cols["purchase_days"] - 1)
    # How overdue the next purchase is against the customer's own rhythm (>1: later than usual).
    extra["overdue_ratio"] = _safe_ratio(extra["recency_days"], extra["avg_purchase_gap_days"])
    extra["purchase_trend"] = _trend(cols["purchases_90"], cols["purchases_prev_90"])
    extra["value_trend"] = _trend(cols["value_90"], cols["value_prev_90"])
    extra["interaction_trend"] = _trend(cols["interactions_90"], cols["interactions_prev_90"])
    extra["engaged"] = ~np.isnan(cols["last_engaged_at"])
    # Bought: a purchase or a won deal. Only buyers can churn; the rest are leads.
    extra["buyer"] = (cols["frequency"] > 0) | (cols["won_deals"] > 0)
    return extra


def build_features(
    bind: Bind,
    cutoff: datetime,
    *,
    customer_ids: Sequence[int] | None = None,
    every: int = 1,
) -> pd.DataFrame:
    """The feature frame (one row per customer that existed before ``cutoff``), indexed by
    customer id: one snapshot read, then ``features_at``.

    ``customer_ids`` keeps only those customers; ``every=n`` only customers whose id is a
    multiple of n (a deterministic sample with the same numbers as the full frame).
    """
    snapshot = read_snapshot(bind, cutoff)
    keep = np.ones(len(snapshot), dtype=bool)
    if customer_ids is not None:
        keep &= np.isin(snapshot.customer_id, np.asarray(list(customer_ids), dtype=np.int64))
    if every > 1:
        keep &= snapshot.customer_id % every == 0
    if not keep.all():
        snapshot = snapshot.subset(keep)
    return features_at(snapshot, cutoff)


def _trend(recent: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Relative change of the last 90 days against the 90 before (-1 = stopped, NaN = nothing before)."""
    return _safe_ratio(recent - previous, previous).astype(np.float64)


def model_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The model's input: MODEL_FEATURES in a fixed order, NaN where a value does not exist."""
    return frame.loc[:, list(MODEL_FEATURES)].to_numpy(dtype=np.float64)


def engaged_between(
    snapshot: Snapshot, start: datetime, end: datetime, *, purchases_only: bool = False
) -> np.ndarray:
    """A mask over the snapshot's customers: a purchase (or, unless ``purchases_only``, an
    inbound message) in [start, end). The churn label's complement."""
    if end > snapshot.until:
        raise ValueError("the snapshot was read before the end of this window")
    ev = snapshot.events
    hit = ev.channel == _PURCHASE
    if not purchases_only:
        hit = hit | (ev.direction == _INBOUND)
    hit &= (ev.at >= micros(start)) & (ev.at < micros(end))
    out = np.zeros(len(snapshot), dtype=bool)
    out[ev.customer[hit]] = True
    return out


def engagement_after(
    bind: Bind, start: datetime, end: datetime, *, purchases_only: bool = False
) -> pd.Index:
    """Customers with a purchase or inbound message in [start, end): the churn label's complement."""
    snapshot = read_snapshot(bind, end)
    mask = engaged_between(snapshot, start, end, purchases_only=purchases_only)
    return pd.Index(snapshot.customer_id[mask], name="customer_id")


def weekly_purchases(
    bind: Bind, cutoff: datetime, customers: pd.Index, weeks: int = 52
) -> np.ndarray:
    """Every customer's purchases week by week before ``cutoff``: for each of the last ``weeks``
    weeks its purchase count and spend, plus both totals for everything older. Nothing a model
    could learn from the purchase record is summarised away, so a model fitted on it bounds
    what any purchase-based feature set can do."""
    snapshot = read_snapshot(bind, cutoff)
    ev = snapshot.events
    bought = ev.channel == _PURCHASE
    week = np.minimum((micros(cutoff) - ev.at[bought]) // (7 * US_PER_DAY), weeks)
    pos = pd.Index(snapshot.customer_id).get_indexer(customers.astype(np.int64))
    row_of = np.full(len(snapshot) + 1, -1, dtype=np.int64)
    row_of[pos[pos >= 0]] = np.flatnonzero(pos >= 0)
    rows = row_of[ev.customer[bought]]
    keep = rows >= 0
    out = np.zeros((len(customers), 2 * (weeks + 1)))
    np.add.at(out, (rows[keep], week[keep]), 1.0)
    np.add.at(out, (rows[keep], weeks + 1 + week[keep]), ev.amount[bought][keep])
    return out
