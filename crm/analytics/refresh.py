"""One analytics refresh: features, segments, churn scores and follow-up findings, stored as a run.

Everything is computed from reads first; then one write unit stores the run, its segment
and score snapshots and its findings, with an audit event. A failure while computing
leaves a ``failed`` run (with the error) and no half-written snapshot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col
from threadpoolctl import threadpool_limits

from crm.analytics import churn, followups, pipeline, products, segments, topics_run, value_run
from crm.analytics.columns import (
    NEVER_AFTER,
    NEVER_BEFORE,
    US_PER_DAY,
    Column,
    micros,
    read_columns,
    time_literal,
)
from crm.analytics.features import Snapshot, epoch_days, features_at, read_snapshot
from crm.config import Settings
from crm.db import Database
from crm.models import (
    AnalyticsRun,
    ChurnScore,
    CustomerSegment,
    CustomerTopics,
    CustomerValue,
    Finding,
    ProductSuggestion,
)
from crm.models.base import open_text
from crm.services import audit, bulk
from crm.services.actor import Actor
from crm.services.audit import record_event

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class RefreshResult:
    run_id: int
    cutoff: datetime
    customers: int
    segments: dict[str, int]
    risk_levels: dict[str, int]
    findings: dict[str, int]
    method: str
    meta: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RunResults:
    """What a refresh computed, ready to store."""

    cutoff: datetime
    kind: str
    started_at: datetime
    segments: pd.DataFrame
    scores: pd.DataFrame
    findings: list[followups.FindingDraft]
    meta: dict[str, Any]
    values: pd.DataFrame | None = None  # customer value: purchases, spend, p_alive
    suggestions: products.SuggestionRows | None = None  # next products
    topics: topics_run.TopicResults | None = None  # what customers talk about


def churn_config(settings: Settings) -> churn.ChurnConfig:
    return churn.ChurnConfig(
        horizon_days=settings.churn_horizon_days,
        training_cutoffs=settings.churn_training_cutoffs,
        cutoff_step_days=settings.churn_cutoff_step_days,
        min_labelled=settings.churn_min_labelled,
        high_risk=settings.churn_high_risk,
        medium_risk=settings.churn_medium_risk,
        seed=settings.analytics_seed,
    )


def _when(days: float) -> datetime | None:
    return None if days is None or np.isnan(days) else _EPOCH + timedelta(days=float(days))


# ------------------------------------------------------------- follow-up records (columnar)


def _utc(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def _fetch(conn: sa.Connection, sql: str, ids: np.ndarray | None = None) -> list[tuple[Any, ...]]:
    """Every row of a statement as plain tuples, on the driver's cursor (no Row per row).
    With ``ids``, the statement ends in ``id IN`` and is run once per chunk of them."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    rows: list[tuple[Any, ...]] = []
    if ids is None:
        cursor.execute(sql)
        rows = cursor.fetchall()
    else:
        values = sorted(set(ids.tolist()))
        for at in range(0, len(values), 10_000):
            chunk = values[at : at + 10_000]
            cursor.execute(f"{sql} ({', '.join(str(int(v)) for v in chunk)})")
            rows += cursor.fetchall()
    cursor.close()
    return rows


def _us(values: list[Any]) -> np.ndarray:
    """Aggregated times as the driver hands them back (SQLite text, PostgreSQL naive UTC
    datetimes, None) as int64 µs since 1970, NEVER_BEFORE for None."""
    stamps = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
    out = stamps.to_numpy(dtype="datetime64[us]").astype(np.int64)
    out[stamps.isna().to_numpy()] = NEVER_BEFORE
    return out


def email_threads(session: Session, now: datetime) -> list[tuple[Any, ...]]:
    """Each email thread of the 30 days before ``now`` (the ``occurred_at`` index keeps this a
    short range): customer, last inbound and last outbound time, a subject."""
    conn = session.connection()
    dialect = conn.dialect.name
    recent = time_literal(now - timedelta(days=30), dialect)
    return _fetch(
        conn,
        "SELECT customer_id, max(CASE WHEN direction = 'inbound' THEN occurred_at END), "
        "max(CASE WHEN direction = 'outbound' THEN occurred_at END), max(subject) "
        f"FROM interactions WHERE channel = 'email' AND occurred_at >= {recent} "
        f"AND occurred_at < {time_literal(now, dialect)} AND deleted_at IS NULL "
        "GROUP BY customer_id, thread_key",
    )


@dataclass
class Flagged:
    """What one rule flagged, as arrays: the owner (-1: nobody), how severe, since when (µs)."""

    kind: str
    at: np.ndarray  # positions in the rule's own arrays
    owner: np.ndarray
    severity: np.ndarray
    since: np.ndarray

    def most_urgent(self, per_owner: int) -> np.ndarray:
        """The ``per_owner`` most severe, then oldest, of each owner's (as ``findings_for``
        lists them): a rep acts on a list, not on every customer of a large base."""
        order = np.lexsort((self.since, -self.severity, self.owner))
        owner = self.owner[order]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else owner
        rank = np.arange(len(owner)) - np.repeat(starts, np.diff(np.r_[starts, len(owner)]))
        return np.sort(self.at[order[rank < per_owner]])

    def totals(self) -> dict[str, int]:
        owners, counts = np.unique(self.owner, return_counts=True)
        return {str(o) if o >= 0 else "none": int(n) for o, n in zip(owners, counts, strict=True)}


def follow_up_findings(
    session: Session,
    settings: Settings,
    now: datetime,
    features: pd.DataFrame,
    flagged: dict[str, dict[str, int]] | None = None,
    thread_rows: list[tuple[Any, ...]] | None = None,
) -> list[followups.FindingDraft]:
    """Run the rules at ``now``. Open deals and open follow-ups are read as arrays, each
    customer's latest interaction and reply come from ``features`` (the refresh's one read of
    the interactions), and each rule's test runs over the arrays. Of what a rule flags, each
    owner's ``findings_per_owner`` most urgent become records for ``crm.analytics.followups``,
    which decides and words the findings; ``flagged`` receives every rule's full count per
    owner. ``thread_rows``: ``email_threads`` at ``now``, when already read."""
    conn = session.connection()
    dialect = conn.dialect.name
    t = micros(now)
    before = time_literal(now, dialect)
    cap = settings.findings_per_owner
    customer_ids = features.index.to_numpy()
    owners = np.nan_to_num(features["owner_id"].to_numpy(), nan=-1).astype(np.int64)
    tally = flagged if flagged is not None else {}

    def place(ids: np.ndarray) -> np.ndarray:
        """Positions of ``ids`` in ``features`` (-1: a customer made after ``now``)."""
        if not len(customer_ids):
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(customer_ids, ids), len(customer_ids) - 1)
        return np.where(customer_ids[pos] == ids, pos, -1)

    def per_customer(values: np.ndarray, at: np.ndarray, missing: int) -> np.ndarray:
        return np.where(at >= 0, values[np.maximum(at, 0)], missing)

    def keep(rule: Flagged) -> np.ndarray:
        tally[rule.kind] = rule.totals()
        return rule.most_urgent(cap)

    def owner_of(value: int) -> int | None:
        return None if value < 0 else int(value)

    last_inbound = features["last_inbound_us"].to_numpy()
    last_activity = features["last_interaction_us"].to_numpy()

    # Open follow-ups made before now: the overdue ones, and the next steps of open deals.
    fu = read_columns(
        conn,
        "follow_ups",
        [Column("id", "int"), Column("customer_id", "int"), Column("deal_id", "int"),
         Column("owner_id", "int"), Column("due_at", "time"), Column("created_at", "time")],
        f"status <> 'done' AND created_at < {before}",
    )  # fmt: skip
    replied = per_customer(last_inbound, place(fu["customer_id"]), NEVER_BEFORE)
    # Overdue, unless the customer wrote after it was made (they answered what it waited for).
    overdue = np.flatnonzero((fu["due_at"] < t) & ~(replied > fu["created_at"]))
    late_days = (t - fu["due_at"][overdue]) // US_PER_DAY
    overdue = keep(
        Flagged(
            "overdue_follow_up",
            overdue,
            fu["owner_id"][overdue],
            np.where(late_days >= 7, 3, 2),
            fu["due_at"][overdue],
        )
    )
    future = fu["due_at"] >= t

    # Open deals made before now, their stage as a code over the configured stages.
    stages = tuple(s.name for s in settings.deal_stages)
    deals = read_columns(
        conn,
        "deals",
        [Column("id", "int"), Column("customer_id", "int"), Column("owner_id", "int"),
         Column("stage", "code", stages), Column("stage_entered_at", "time"),
         Column("expected_close_date", "date", null=NEVER_AFTER)],
        f"status = 'open' AND created_at < {before}",
    )  # fmt: skip
    limits = pipeline.rotting_limits(settings)
    limit_days = np.array([limits.get(name, 0) for name in stages] + [0], dtype=np.int64)
    limit = limit_days[deals["stage"]]  # code -1 (a stage no longer configured) never rots
    # Any interaction of the customer resets the clock: an interaction on a deal always
    # belongs to the deal's customer (the services refuse any other, and a merge moves both).
    activity = per_customer(last_activity, place(deals["customer_id"]), NEVER_BEFORE)
    idle_since = np.maximum(deals["stage_entered_at"], activity)
    # The next step: the earliest open follow-up still to come, on the deal or its customer.
    due = pd.Series(fu["due_at"][future])
    next_step = np.fmin(
        due.groupby(fu["deal_id"][future]).min().reindex(deals["id"]).to_numpy(np.float64),
        due.groupby(fu["customer_id"][future])
        .min()
        .reindex(deals["customer_id"])
        .to_numpy(np.float64),
    )
    has_step = ~np.isnan(next_step)
    idle = t - idle_since
    rotting = np.flatnonzero((limit > 0) & ~has_step & (idle > limit * US_PER_DAY))
    rotting = keep(
        Flagged(
            "rotting_deal",
            rotting,
            deals["owner_id"][rotting],
            np.where(idle[rotting] > 2 * limit[rotting] * US_PER_DAY, 3, 2),
            idle_since[rotting],
        )
    )
    today = datetime.combine(now.astimezone(settings.tz).date(), datetime.min.time(), tzinfo=UTC)
    close = deals["expected_close_date"]
    late = np.flatnonzero(close < micros(today))
    late = keep(
        Flagged(
            "close_date_passed",
            late,
            deals["owner_id"][late],
            np.where((micros(today) - close[late]) // US_PER_DAY > 14, 2, 1),
            close[late],
        )
    )

    if thread_rows is None:
        thread_rows = email_threads(session, now)
    thread_customer = np.array([row[0] for row in thread_rows], dtype=np.int64)
    thread_owner = per_customer(owners, place(thread_customer), -1)
    last_in = _us([row[1] for row in thread_rows])
    last_out = _us([row[2] for row in thread_rows])
    waiting = np.flatnonzero((last_in != NEVER_BEFORE) & (last_out < last_in))
    hours = followups.business_hours_until([_utc(v) for v in last_in[waiting]], now, settings.tz)
    bh = settings.unanswered_business_hours
    unanswered = keep(
        Flagged(
            "unanswered_email",
            waiting[hours > bh],
            thread_owner[waiting[hours > bh]],
            np.where(hours[hours > bh] > 3 * bh, 3, 2),
            last_in[waiting[hours > bh]],
        )
    )
    quiet_out = np.flatnonzero(
        (last_out != NEVER_BEFORE)
        & (last_in <= last_out)
        & (t - last_out > settings.awaiting_reply_days * US_PER_DAY)
    )
    awaiting = keep(
        Flagged(
            "awaiting_reply",
            quiet_out,
            thread_owner[quiet_out],
            np.ones(len(quiet_out), dtype=np.int64),
            last_out[quiet_out],
        )
    )

    # Going quiet: active customers past their value tier's days without a touch either way.
    active = np.flatnonzero(features["active"].to_numpy(dtype=bool))
    tiers = followups.value_tiers(features["value_365"].to_numpy()[active])
    touch = np.fmax(features["last_inbound_at"].to_numpy(), features["last_outbound_at"].to_numpy())
    touch = touch[active]
    days = {
        "high": settings.quiet_days_high,
        "mid": settings.quiet_days_mid,
        "low": settings.quiet_days_low,
    }
    tier_limit = np.select(
        [tiers == "high", tiers == "mid"], [days["high"], days["mid"]], days["low"]
    )
    quiet = np.flatnonzero(~(epoch_days(now) - touch <= tier_limit))
    never = np.isnan(touch[quiet])
    quiet = keep(
        Flagged(
            "going_quiet",
            quiet,
            owners[active[quiet]],
            np.select([tiers[quiet] == "high", tiers[quiet] == "mid"], [3, 2], 1),
            np.where(never, NEVER_BEFORE, np.nan_to_num(touch[quiet]) * US_PER_DAY).astype(
                np.int64
            ),
        )
    )

    # Words for what is kept: names, notes, titles (plain reads of those rows only; notes and
    # subjects are sealed columns read past their type, so opened here).
    who = np.concatenate(
        [
            fu["customer_id"][overdue],
            deals["customer_id"][np.union1d(rotting, late)],
            thread_customer[np.union1d(unanswered, awaiting)],
            customer_ids[active[quiet]],
        ]
    )
    names = dict(_fetch(conn, "SELECT id, name FROM customers WHERE id IN", who))
    notes = {
        k: open_text(v)
        for k, v in _fetch(conn, "SELECT id, note FROM follow_ups WHERE id IN", fu["id"][overdue])
    }
    kept_deals = np.union1d(rotting, late)
    words = {
        row[0]: row[1:]
        for row in _fetch(
            conn, "SELECT id, title, stage FROM deals WHERE id IN", deals["id"][kept_deals]
        )
    }

    overdue_records = [
        followups.FollowUpRecord(
            id=int(fu["id"][k]),
            customer_id=int(fu["customer_id"][k]),
            owner_id=owner_of(fu["owner_id"][k]),
            due_at=_utc(fu["due_at"][k]),
            created_at=_utc(fu["created_at"][k]),
            note=notes.get(int(fu["id"][k])) or "",
            customer_name=names.get(int(fu["customer_id"][k]), ""),
        )
        for k in overdue
    ]
    last_reply = {
        r.customer_id: _utc(replied[k])
        for r, k in zip(overdue_records, overdue, strict=True)
        if replied[k] != NEVER_BEFORE
    }
    findings = followups.overdue_follow_ups(now, overdue_records, last_reply)

    def deal_records(kept: np.ndarray) -> list[followups.DealRecord]:
        return [
            followups.DealRecord(
                id=int(deals["id"][k]),
                customer_id=int(deals["customer_id"][k]),
                owner_id=owner_of(deals["owner_id"][k]),
                title=words[int(deals["id"][k])][0],
                stage=words[int(deals["id"][k])][1],
                stage_entered_at=_utc(deals["stage_entered_at"][k]),
                expected_close_date=None if close[k] == NEVER_AFTER else _utc(close[k]).date(),
                last_activity_at=None if activity[k] == NEVER_BEFORE else _utc(activity[k]),
                next_step_at=_utc(next_step[k]) if has_step[k] else None,
            )
            for k in kept
        ]

    findings += followups.rotting_deals(now, deal_records(rotting), limits)
    findings += followups.close_date_passed(now, deal_records(late), settings.tz)

    def threads(kept: np.ndarray) -> list[followups.ThreadRecord]:
        return [
            followups.ThreadRecord(
                customer_id=int(thread_customer[k]),
                owner_id=owner_of(thread_owner[k]),
                thread_key=None,
                last_inbound_at=None if last_in[k] == NEVER_BEFORE else _utc(last_in[k]),
                last_outbound_at=None if last_out[k] == NEVER_BEFORE else _utc(last_out[k]),
                customer_name=names.get(int(thread_customer[k]), ""),
                subject=open_text(thread_rows[k][3]),
            )
            for k in kept
        ]

    findings += followups.unanswered_emails(
        now, threads(unanswered), business_hours=bh, tz=settings.tz
    )
    findings += followups.awaiting_reply(now, threads(awaiting), days=settings.awaiting_reply_days)

    touches = [
        followups.CustomerTouch(
            customer_id=int(customer_ids[active[k]]),
            owner_id=owner_of(owners[active[k]]),
            name=names.get(int(customer_ids[active[k]]), ""),
            value_tier=tiers[k],
            last_touch_at=_when(touch[k]),
        )
        for k in quiet
    ]
    findings += followups.going_quiet(now, touches, days)
    return findings


# ------------------------------------------------------------------ compute


@dataclass
class Exchange:
    """What the main work of a refresh and the work beside it (``_beside``, on a second
    connection) hand each other, as futures: the snapshot, the segments and at the end all its
    results one way; the email threads of the follow-up rules and the customer values the
    other. A failure on either side is set on every future still open, so neither waits for
    what will not come."""

    snapshot: Future[Snapshot | None] = field(default_factory=Future)
    segments: Future[pd.DataFrame] = field(default_factory=Future)
    threads: Future[list[tuple[Any, ...]]] = field(default_factory=Future)
    values: Future[pd.DataFrame] = field(default_factory=Future)
    # The main work's results, for the work beside it to store (see ``_beside``).
    results: Future[RunResults] = field(default_factory=Future)

    def take_snapshot(self) -> Snapshot:
        """The snapshot, once; the exchange lets go of it (its memory goes with its last user)."""
        snapshot = self.snapshot.result()
        if snapshot is None:
            raise RuntimeError("the snapshot was taken already")
        self.snapshot = Future()
        self.snapshot.set_result(None)
        return snapshot

    @staticmethod
    def hand(future: Future[Any], value: Any) -> None:
        """Hand ``value`` over; when the other side has failed already, stop here too."""
        try:
            future.set_result(value)
        except InvalidStateError:
            raise future.exception() or RuntimeError("the refresh failed") from None

    def fail(self, exc: BaseException) -> None:
        for future in (self.snapshot, self.segments, self.threads, self.values, self.results):
            if not future.done():
                future.set_exception(exc)


def compute(
    session: Session,
    *,
    settings: Settings,
    cutoff: datetime,
    kind: str = "refresh",
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
    exchange: Exchange | None = None,
) -> tuple[RunResults, churn.ChurnModel | None]:
    """Everything a run stores but next-product suggestions and topics, from one snapshot.
    With ``exchange``, the email threads and the customer values come from the work beside
    (which is handed the snapshot and the segments as soon as they are known)."""
    with threadpool_limits(limits=settings.analytics_threads):
        return _compute(session, settings, cutoff, kind, progress, timings, exchange)


def _compute(
    session: Session,
    settings: Settings,
    cutoff: datetime,
    kind: str,
    progress: Progress | None,
    timings: dict[str, float] | None,
    exchange: Exchange | None,
) -> tuple[RunResults, churn.ChurnModel | None]:
    say = progress or (lambda _m: None)
    clock = timings if timings is not None else {}
    started = datetime.now(UTC)

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        clock[name] = round(clock.get(name, 0.0) + now - since, 3)
        return now

    t = time.perf_counter()
    say("reading the store")
    snapshot = read_snapshot(session, cutoff, readers=settings.analytics_readers)
    if exchange is not None:
        exchange.hand(exchange.snapshot, snapshot)
    t = lap("read", t)
    say("building features")
    features = features_at(snapshot, cutoff)
    t = lap("features", t)
    say(f"segmenting {len(features):,} customers")
    rfm = segments.rfm_segments(features)
    clusters = segments.kmeans_segments(
        features,
        k_range=(settings.segment_k_min, max(settings.segment_k_min, settings.segment_k_max)),
        seed=settings.analytics_seed,
        silhouette_sample=settings.segment_silhouette_sample,
    )
    seg = rfm.assign(cluster=clusters.labels, cluster_name=clusters.labels.map(clusters.names))
    if exchange is not None:
        exchange.hand(exchange.segments, seg)
    t = lap("segments", t)
    config = churn_config(settings)
    model, churn_meta = churn.train(snapshot, cutoff, config, progress=say)
    t = lap("churn_training", t)
    if exchange is None:
        say("estimating customer value")
        values = value_run.values_from_snapshot(snapshot, cutoff, settings.value_horizon_months)
        t = lap("value", t)
    del snapshot
    say("scoring churn risk" + (" (cold start: transparent score)" if model is None else ""))
    scores = churn.score(features, model, config, meta=churn_meta)
    if exchange is not None:
        values = exchange.values.result()
    stake, stake_from_model = value_run.value_at_stake(features.loc[scores.frame.index], values)
    scores.frame["value_at_stake"] = stake.to_numpy()
    t = lap("churn_scoring", t)
    say("running follow-up rules")
    flagged: dict[str, dict[str, int]] = {}
    findings = follow_up_findings(
        session, settings, cutoff, features, flagged,
        None if exchange is None else exchange.threads.result(),
    )  # fmt: skip
    lap("followups", t)
    meta: dict[str, Any] = {
        # Everything each rule flagged, per owner ("none": nobody owns it); each owner's
        # ``per_owner`` most urgent of each kind are stored as findings.
        "findings": {
            "per_owner": settings.findings_per_owner,
            "flagged": flagged,
            "stored": len(findings),
        },
        "method": scores.method,
        "churn": churn_meta,
        "segments": {
            "k": clusters.k,
            "silhouette": {str(k): round(v, 4) for k, v in clusters.silhouette.items()},
            "clusters": {str(k): v for k, v in clusters.names.items()},
        },
        "data": {"customers": int(len(features)), "scored": int(len(scores.frame))},
    }
    if model is None:
        meta["cold_start"] = (
            "Too little labelled history for a model ("
            + str(churn_meta.get("cold_start_reason"))
            + "); risk is the transparent score 1 - exp(-days since engagement / usual gap)."
        )
    meta["value"] = {
        "horizon_months": settings.value_horizon_months,
        "customers": len(values),
        # Scored customers whose value at stake is the model's (the others: the last 12 months).
        "stake_from_model": stake_from_model,
    }
    results = RunResults(cutoff, kind, started, seg, scores.frame, findings, meta, values)
    return results, model


# ------------------------------------------------------------------ store


def json_strings(texts: list[str]) -> str:
    """``json.dumps`` of a list of strings, in a fraction of its time (one C call per string and
    no encoder set up per list): a run stores the reasons of a million customers."""
    return "[" + ", ".join(map(encode_basestring_ascii, texts)) + "]"


def _stored(value: Any, kind: str, dialect: str) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if kind == "time":
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.isoformat(" ", "microseconds") if dialect == "sqlite" else naive
    if kind == "json":
        return json.dumps(value)
    return value


@dataclass
class Part:
    """Rows of one of a run's tables, column by column, without the run id."""

    table: sa.Table
    names: tuple[str, ...]
    columns: list[list[Any]]

    def rows(self, run_id: int | None = None) -> Iterator[tuple[Any, ...]]:
        if run_id is None:
            return zip(*self.columns, strict=True)
        return zip([run_id] * len(self.columns[0]), *self.columns, strict=True)


def segment_part(seg: pd.DataFrame) -> Part:
    return Part(
        CustomerSegment.__table__,  # type: ignore[attr-defined]
        ("customer_id", "recency_score", "frequency_score", "monetary_score", "rfm_segment",
         "cluster", "cluster_name"),
        [seg.index.tolist(), seg["recency_score"].tolist(), seg["frequency_score"].tolist(),
         seg["monetary_score"].tolist(), seg["rfm_segment"].tolist(), seg["cluster"].tolist(),
         seg["cluster_name"].tolist()],
    )  # fmt: skip


def value_part(values: pd.DataFrame, horizon_months: int) -> Part:
    return Part(
        CustomerValue.__table__,  # type: ignore[attr-defined]
        ("customer_id", "expected_purchases", "expected_spend", "p_alive", "horizon_months"),
        [values.index.to_numpy(dtype=np.int64).tolist(),
         np.round(values["purchases"].to_numpy(dtype=np.float64), 4).tolist(),
         np.round(values["spend"].to_numpy(dtype=np.float64), 2).tolist(),
         np.round(values["p_alive"].to_numpy(dtype=np.float64), 6).tolist(),
         [horizon_months] * len(values)],
    )  # fmt: skip


def suggestion_part(rows: products.SuggestionRows) -> Part:
    return Part(
        ProductSuggestion.__table__,  # type: ignore[attr-defined]
        ("customer_id", "product_id", "rank", "score", "reason"),
        [rows.customer_id.tolist(), rows.product_id.tolist(), rows.rank.tolist(),
         rows.score.tolist(), list(rows.reason)],
    )  # fmt: skip


@dataclass
class Staged:
    """A run's parts written beside into a ``bulk.Stage`` before its store transaction: each
    part handled, with its staged table (None: the part has no rows)."""

    stage: bulk.Stage
    parts: dict[str, str | None] = field(default_factory=dict)

    def put(self, name: str, part: Part | None) -> None:
        table = None
        if part is not None and part.columns and part.columns[0]:
            table = part.table.name
            self.stage.write(table, part.names, part.rows())
        self.parts[name] = table


class RunWriter:
    """One run's rows, written in the open transaction part by part as each is ready (a refresh
    on PostgreSQL writes the suggestions, values and segments while the churn model is still
    being fitted); ``finish`` writes what is left and marks the run done, with its audit event.
    Until the transaction commits nobody sees any of it, and a failure rolls all of it back."""

    def __init__(
        self, session: Session, *, actor: Actor, kind: str, cutoff: datetime, started_at: datetime
    ) -> None:
        actor.require_manager("refresh analytics")
        self.session = session
        self.actor = actor
        self.dialect = session.get_bind().dialect.name
        self.run = AnalyticsRun(kind=kind, status="running", cutoff=cutoff, started_at=started_at)
        session.add(self.run)
        session.flush()
        self.run_id = int(self.run.id)  # type: ignore[arg-type]
        self.written: set[str] = set()

    @classmethod
    def of(cls, session: Session, actor: Actor, results: RunResults) -> RunWriter:
        return cls(
            session,
            actor=actor,
            kind=results.kind,
            cutoff=results.cutoff,
            started_at=results.started_at,
        )

    def write(self, name: str, part: Part) -> None:
        bulk.write_rows(self.session, part.table, ("run_id", *part.names), part.rows(self.run_id))
        self.written.add(name)

    def copy_staged(self, alias: str, stage: Staged) -> None:
        """Copy the parts staged beside (attached as ``alias``) into the run."""
        for name, table in stage.parts.items():
            if table is not None:
                names = stage.stage.tables[table]
                bulk.copy_staged(self.session, alias, table, names, {"run_id": self.run_id})
            self.written.add(name)

    def segments(self, seg: pd.DataFrame) -> None:
        self.write("segments", segment_part(seg))

    def scores(self, sc: pd.DataFrame) -> None:
        bulk.write_rows(
            self.session,
            ChurnScore.__table__,  # type: ignore[attr-defined]
            ("run_id", "customer_id", "probability", "risk_level", "value_at_stake", "reasons",
             "method"),
            zip([self.run_id] * len(sc), sc.index.tolist(),
                np.round(sc["probability"].to_numpy(dtype=np.float64), 6).tolist(),
                sc["risk_level"].tolist(),
                np.round(sc["value_at_stake"].to_numpy(dtype=np.float64), 2).tolist(),
                [json_strings(r) for r in sc["reasons"]], sc["method"].tolist(), strict=True),
        )  # fmt: skip
        self.written.add("scores")

    def findings(self, findings: list[followups.FindingDraft]) -> None:
        why = Finding.__table__.c.why  # type: ignore[attr-defined]
        why_stored = bulk.converter(why, self.dialect) or str
        bulk.write_rows(
            self.session,
            Finding.__table__,  # type: ignore[attr-defined]
            ("run_id", "kind", "customer_id", "deal_id", "follow_up_id", "owner_id", "severity",
             "why", "action", "since"),
            (
                (self.run_id, f.kind, f.customer_id, f.deal_id, f.follow_up_id, f.owner_id,
                 f.severity, why_stored(f.why), f.action, _stored(f.since, "time", self.dialect))
                for f in findings
            ),
        )  # fmt: skip
        self.written.add("findings")

    def values(self, values: pd.DataFrame | None, horizon_months: int) -> None:
        if values is not None and len(values):
            self.write("values", value_part(values, horizon_months))
        self.written.add("values")

    def suggestions(self, rows: products.SuggestionRows | None) -> None:
        if rows is not None and len(rows):
            self.write("suggestions", suggestion_part(rows))
        self.written.add("suggestions")

    def topics(self, found: topics_run.TopicResults | None) -> None:
        topics_run.record(self.session, self.run_id, found)
        self.written.add("topics")

    def finish(self, results: RunResults, *, erased_since: int | None = None) -> AnalyticsRun:
        """Write what is not written yet, mark the run done with its audit event, and (with
        ``erased_since``, an audit seq read before the refresh read anything) drop its rows of
        customers erased since, under the audit chain's lock: no erasure comes in between."""
        if "segments" not in self.written:
            self.segments(results.segments)
        if "values" not in self.written:
            horizon = int(results.meta.get("value", {}).get("horizon_months", 12))
            self.values(results.values, horizon)
        if "suggestions" not in self.written:
            self.suggestions(results.suggestions)
        if "topics" not in self.written:
            self.topics(results.topics)
        if "scores" not in self.written:
            self.scores(results.scores)
        if "findings" not in self.written:
            self.findings(results.findings)
        audit.lock_chain(self.session)
        run = self.run
        run.status = "done"
        run.finished_at = datetime.now(UTC)
        run.customers = int(len(results.segments))
        run.meta = results.meta
        self.session.add(run)
        self.session.flush()
        record_event(
            self.session,
            actor=self.actor,
            action="analytics_refresh",
            entity="analytics_run",
            entity_id=self.run_id,
            after={
                "kind": results.kind,
                "cutoff": results.cutoff,
                "customers": run.customers,
                "scored": int(len(results.scores)),
                "findings": len(results.findings),
                "flagged": sum(
                    sum(v.values()) for v in results.meta["findings"]["flagged"].values()
                ),
                "method": results.meta.get("method"),
            },
        )
        if erased_since is not None:
            drop_erased(self.session, self.run_id, since=erased_since)
        return run


def record_run(
    session: Session,
    *,
    actor: Actor,
    results: RunResults,
    writer: RunWriter | None = None,
    erased_since: int | None = None,
) -> AnalyticsRun:
    """Store a finished run and its snapshots in the open transaction, with an audit event;
    ``writer``: the run's writer when some of its rows are written already."""
    if writer is None:
        writer = RunWriter.of(session, actor, results)
    return writer.finish(results, erased_since=erased_since)


def drop_erased(session: Session, run_id: int, *, since: int) -> int:
    """Remove a run's rows about customers erased after audit seq ``since`` (the refresh read
    them before they were erased); returns how many went. The snapshot tables have no foreign
    keys to do it (see crm.models.analytics). Call with the audit chain locked."""
    erased = audit.erased_customers_since(session, since)
    if not erased:
        return 0
    removed = 0
    for model in (CustomerSegment, ChurnScore, CustomerValue, ProductSuggestion, Finding):
        result = session.execute(
            sa.delete(model).where(col(model.run_id) == run_id, col(model.customer_id).in_(erased))
        )
        removed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    # What they talk about is kept across runs: the run may have written it again.
    result = session.execute(
        sa.delete(CustomerTopics).where(col(CustomerTopics.customer_id).in_(erased))
    )
    return removed + int(result.rowcount or 0)  # type: ignore[attr-defined]


def record_failed_run(
    session: Session, *, actor: Actor, cutoff: datetime, kind: str, started_at: datetime, error: str
) -> AnalyticsRun:
    actor.require_manager("refresh analytics")
    run = AnalyticsRun(
        kind=kind,
        status="failed",
        cutoff=cutoff,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        meta={"error": error[:2000]},
    )
    session.add(run)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="analytics_refresh_failed",
        entity="analytics_run",
        entity_id=run.id,
        after={"kind": kind, "cutoff": cutoff, "error": error[:500]},
    )
    return run


@dataclass
class EarlyStore:
    """Who stores a run, and from which audit seq its erasures are dropped: given to the work
    beside a refresh, it writes the run's rows as they are made, in its own transaction."""

    actor: Actor
    kind: str
    started_at: datetime
    erased_since: int


def _beside(
    db: Database,
    settings: Settings,
    cutoff: datetime,
    segments: Callable[[], pd.Series],
    timings: dict[str, float],
    exchange: Exchange | None,
    session: Session | None = None,
    store: EarlyStore | None = None,
    staged: Staged | None = None,
) -> tuple[
    tuple[products.SuggestionRows | None, dict[str, Any]],
    tuple[topics_run.TopicResults | None, dict[str, Any]],
    AnalyticsRun | None,
]:
    """Next-product suggestions; with ``exchange``, then the email threads of the follow-up
    rules and the customer values (from the main work's snapshot), each handed over as soon as
    it is made; then topics. Suggestions and topics never fail a refresh (an error is kept in
    their summary). On ``session`` or a session of its own.

    With ``store`` (and ``exchange``), it also stores the run, in one transaction of its own
    opened first: each part as soon as it is made (suggestions, values, topics, segments),
    then, once the main work hands over its results, the rest (``RunWriter.finish``); the run
    it stored is the third thing returned."""

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - since, 3)
        return now

    try:
        with contextlib.ExitStack() as stack:
            own = session if session is not None else stack.enter_context(db.session())
            writer = None
            if store is not None and exchange is not None:
                tx = stack.enter_context(db.transaction())
                writer = RunWriter(
                    tx,
                    actor=store.actor,
                    kind=store.kind,
                    cutoff=cutoff,
                    started_at=store.started_at,
                )
            t = time.perf_counter()
            suggestions = products.compute_for_run(own, settings, cutoff)
            t = lap("next_products", t)
            if writer is not None:
                writer.suggestions(suggestions[0])
                t = lap("store_beside", t)

            if exchange is not None:
                exchange.hand(exchange.threads, email_threads(own, cutoff))
                t = lap("email_threads", t)
                snapshot = exchange.take_snapshot()
                t = time.perf_counter()
                values = value_run.values_from_snapshot(
                    snapshot, cutoff, settings.value_horizon_months
                )
                del snapshot
                exchange.hand(exchange.values, values)
                t = lap("value", t)
                if writer is not None:
                    writer.values(values, settings.value_horizon_months)
                    t = lap("store_beside", t)
                if staged is not None:
                    staged_values = values
                del values
            topic_results = topics_run.compute(own, settings, segments)
            t = lap("topics", t)
            if staged is not None and exchange is not None:
                # Staged last: a second SQLite connection writing while the main work reads
                # the interactions slows both (the library serialises them, see read_columns).
                rows = suggestions[0]
                staged.put("suggestions", suggestion_part(rows) if rows is not None else None)
                staged.put("values", value_part(staged_values, settings.value_horizon_months))
                del staged_values
                staged.put("segments", segment_part(exchange.segments.result()))
                t = lap("store_beside", t)
            run = None
            if writer is not None and exchange is not None:
                writer.topics(topic_results[0])
                writer.segments(exchange.segments.result())
                t = lap("store_beside", t)
                results = exchange.results.result()
                t = time.perf_counter()
                results.meta["next_products"] = suggestions[1]
                results.meta["topics"] = topic_results[1]
                run = record_run(
                    writer.session,
                    actor=store.actor,  # type: ignore[union-attr]
                    results=results,
                    writer=writer,
                    erased_since=store.erased_since,  # type: ignore[union-attr]
                )
                lap("store_beside", t)
        # Left the transaction: committed.
    except BaseException as exc:
        if exchange is not None:
            exchange.fail(exc)  # the main work waits for what is handed over: it fails too
        raise
    return suggestions, topic_results, run


def _store_directory(db: Database) -> str | None:
    """The directory of a SQLite store's file (None: the system's temporary directory)."""
    name = sa.engine.make_url(db.url).database
    if db.dialect != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return None
    return str(Path(name).expanduser().resolve().parent)


def _second_connection_sees_the_same(db: Database) -> bool:
    """False for an in-memory SQLite database: each connection to it is a database of its own."""
    if db.dialect != "sqlite":
        return True
    name = sa.engine.make_url(db.url).database
    return bool(name) and name != ":memory:" and "mode=memory" not in str(db.url)


def refresh(
    db: Database,
    *,
    settings: Settings,
    actor: Actor,
    cutoff: datetime | None = None,
    kind: str = "refresh",
    progress: Progress | None = None,
) -> RefreshResult:
    """Compute and store one analytics run as of ``cutoff`` (default: now)."""
    actor.require_manager("refresh analytics")
    if cutoff is not None and cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware (UTC)")
    cutoff = cutoff or datetime.now(UTC)
    started = datetime.now(UTC)
    timings: dict[str, float] = {}
    model_path: Path | None = None
    staged: Staged | None = None
    try:
        with db.session() as session:
            # Erasures after this mark are dropped from the run when it is stored.
            erased_mark = audit.head_seq(session)
            # Next-product suggestions, the email threads, customer value and topics read
            # tables (or rows, or the snapshot) of their own: they run beside the main work on
            # a second connection while this one reads the interactions and fits the models
            # (both wait on the database or in numpy and scikit-learn most of the time, so a
            # second core does them); see ``Exchange``. On PostgreSQL the work beside also
            # stores the run, each part as it is made, in one transaction (``_beside``); on
            # SQLite, whose one writer at a time would lock everyone else out for as long, the
            # run is stored here at the end, in one short transaction.
            exchange = Exchange() if _second_connection_sees_the_same(db) else None
            early = (
                EarlyStore(actor, kind, started, erased_mark)
                if exchange is not None and db.dialect == "postgresql"
                else None
            )
            with ThreadPoolExecutor(1, thread_name_prefix="refresh-beside") as pool:
                beside = None
                if exchange is not None:
                    if early is None and db.dialect == "sqlite":
                        # The big parts are written beside into a scratch file meanwhile, and
                        # copied in by SQLite itself inside the short store transaction.
                        staged = Staged(bulk.Stage(_store_directory(db)))
                    beside = pool.submit(
                        _beside,
                        db,
                        settings,
                        cutoff,
                        lambda: exchange.segments.result()["rfm_segment"],
                        timings,
                        exchange,
                        None,
                        early,
                        staged,
                    )
                try:
                    results, model = compute(
                        session,
                        settings=settings,
                        cutoff=cutoff,
                        kind=kind,
                        progress=progress,
                        timings=timings,
                        exchange=exchange,
                    )
                    if model is not None:
                        model_path = churn.save_model(model, Path(settings.model_dir), cutoff)
                        results.meta["churn"]["model_file"] = str(model_path)
                    say = progress or (lambda _m: None)
                    say("storing the run")
                    t = time.perf_counter()
                    if exchange is not None:
                        exchange.hand(exchange.results, results)
                except BaseException as exc:
                    if exchange is not None:
                        exchange.fail(exc)
                    raise
                next_products, topic_results, run = (
                    beside.result()
                    if beside is not None
                    else _beside(
                        db,
                        settings,
                        cutoff,
                        lambda: results.segments["rfm_segment"],
                        timings,
                        None,
                        session,
                    )
                )
                timings["waited_beside" if run is None else "store"] = round(
                    time.perf_counter() - t, 3
                )
        if run is None:
            results.meta["next_products"] = next_products[1]
            results.meta["topics"] = topic_results[1]
            results.suggestions, results.topics = next_products[0], topic_results[0]
            t = time.perf_counter()
            attach = {"stage": staged.stage.path} if staged is not None else None
            with db.transaction(attach=attach) as session, bulk.page_cache(session):
                writer = RunWriter.of(session, actor, results)
                if staged is not None:
                    writer.copy_staged("stage", staged)
                run = record_run(
                    session,
                    actor=actor,
                    results=results,
                    writer=writer,
                    erased_since=erased_mark,
                )
            timings["store"] = round(time.perf_counter() - t, 3)
    except Exception as exc:
        if model_path is not None:
            model_path.unlink(missing_ok=True)
        logger.exception("analytics refresh at %s failed", cutoff)
        with db.transaction() as session:
            record_failed_run(
                session, actor=actor, cutoff=cutoff, kind=kind, started_at=started, error=repr(exc)
            )
        raise
    finally:
        if staged is not None:
            staged.stage.close()
    return RefreshResult(
        run_id=int(run.id),  # type: ignore[arg-type]
        cutoff=cutoff,
        customers=run.customers,
        segments=dict(Counter(results.segments["rfm_segment"])),
        risk_levels=dict(Counter(results.scores["risk_level"])),
        findings={
            kind: sum(per_owner.values())
            for kind, per_owner in results.meta["findings"]["flagged"].items()
            if per_owner
        },
        method=results.meta["method"],
        meta=results.meta,
        seconds=timings,
    )
