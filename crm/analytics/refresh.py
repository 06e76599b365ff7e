"""One analytics refresh: features, segments, churn scores and follow-up findings, stored as a run.

Everything is computed from reads first; then one write unit stores the run, its segment
and score snapshots and its findings, with an audit event. A failure while computing
leaves a ``failed`` run (with the error) and no half-written snapshot.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from crm.analytics import churn, followups, pipeline, products, segments
from crm.analytics.features import CUSTOMERS, FOLLOW_UPS, INTERACTIONS, build_features
from crm.config import Settings
from crm.db import Database
from crm.models import (
    AnalyticsRun,
    ChurnScore,
    CustomerSegment,
    Finding,
)
from crm.models.base import UTCDateTime
from crm.services import bulk
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


# ------------------------------------------------------------- follow-up records (SQL aggregates)


def follow_up_findings(
    session: Session, settings: Settings, now: datetime, features: pd.DataFrame
) -> list[followups.FindingDraft]:
    """Load the few records the rules need (never every interaction); run the rules at ``now``."""
    conn = session.connection()
    t = sa.literal(now, UTCDateTime())
    c, f, i = (table.c for table in (CUSTOMERS, FOLLOW_UPS, INTERACTIONS))
    names: dict[int, str] = {
        int(k): v for k, v in conn.execute(sa.select(c.id, c.name).where(c.created_at < t))
    }
    owners = features["owner_id"]
    last_inbound = features["last_inbound_at"].dropna()
    last_reply = {int(k): w for k, v in last_inbound.items() if (w := _when(v)) is not None}

    overdue = [
        followups.FollowUpRecord(
            id=r.id,
            customer_id=r.customer_id,
            owner_id=r.owner_id,
            due_at=r.due_at,
            created_at=r.created_at,
            note=r.note or "",
            customer_name=names.get(r.customer_id, ""),
        )
        for r in conn.execute(
            sa.select(f.id, f.customer_id, f.owner_id, f.due_at, f.created_at, f.note).where(
                f.status != "done", f.due_at < t, f.created_at < t
            )
        )
    ]
    findings = followups.overdue_follow_ups(now, overdue, last_reply)

    deals = pipeline.deal_records(session, now)
    findings += followups.rotting_deals(now, deals, pipeline.rotting_limits(settings))
    findings += followups.close_date_passed(now, deals, settings.tz)

    recent = sa.literal(now - timedelta(days=30), UTCDateTime())
    threads = []
    for tr in conn.execute(
        sa.select(
            i.customer_id,
            i.thread_key,
            sa.func.max(i.occurred_at).filter(i.direction == "inbound").label("last_in"),
            sa.func.max(i.occurred_at).filter(i.direction == "outbound").label("last_out"),
            sa.func.max(i.subject).label("subject"),
        )
        .where(
            i.channel == "email", i.occurred_at >= recent, i.occurred_at < t, i.deleted_at.is_(None)
        )
        .group_by(i.customer_id, i.thread_key)
    ):
        owner = owners.get(tr.customer_id)
        threads.append(
            followups.ThreadRecord(
                customer_id=tr.customer_id,
                owner_id=None if owner is None or pd.isna(owner) else int(owner),
                thread_key=tr.thread_key,
                last_inbound_at=pipeline.utc_result(tr.last_in),
                last_outbound_at=pipeline.utc_result(tr.last_out),
                customer_name=names.get(tr.customer_id, ""),
                subject=tr.subject,
            )
        )
    findings += followups.unanswered_emails(
        now, threads, business_hours=settings.unanswered_business_hours, tz=settings.tz
    )
    findings += followups.awaiting_reply(now, threads, days=settings.awaiting_reply_days)

    active = features[features["active"].astype(bool)]
    tiers = followups.value_tiers(active["value_365"].to_numpy())
    touch = active[["last_inbound_at", "last_outbound_at"]].max(axis=1)
    touches = [
        followups.CustomerTouch(
            customer_id=int(cid),
            owner_id=None if pd.isna(owner) else int(owner),
            name=names.get(int(cid), ""),
            value_tier=tier,
            last_touch_at=_when(last),
        )
        for cid, owner, tier, last in zip(
            active.index, active["owner_id"], tiers, touch, strict=True
        )
    ]
    days = {
        "high": settings.quiet_days_high,
        "mid": settings.quiet_days_mid,
        "low": settings.quiet_days_low,
    }
    findings += followups.going_quiet(now, touches, days)
    return findings


# ------------------------------------------------------------------ compute


def compute(
    session: Session,
    *,
    settings: Settings,
    cutoff: datetime,
    kind: str = "refresh",
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[RunResults, churn.ChurnModel | None]:
    say = progress or (lambda _m: None)
    clock = timings if timings is not None else {}
    started = datetime.now(UTC)

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        clock[name] = round(clock.get(name, 0.0) + now - since, 3)
        return now

    t = time.perf_counter()
    say("building features")
    features = build_features(session, cutoff)
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
    t = lap("segments", t)
    config = churn_config(settings)
    model, churn_meta = churn.train(session, cutoff, config, progress=say)
    t = lap("churn_training", t)
    say("scoring churn risk" + (" (cold start: transparent score)" if model is None else ""))
    scores = churn.score(features, model, config, meta=churn_meta)
    t = lap("churn_scoring", t)
    say("running follow-up rules")
    findings = follow_up_findings(session, settings, cutoff, features)
    lap("followups", t)
    meta: dict[str, Any] = {
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
    return RunResults(cutoff, kind, started, seg, scores.frame, findings, meta), model


# ------------------------------------------------------------------ store


def _stored(value: Any, kind: str, dialect: str) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if kind == "time":
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.isoformat(" ", "microseconds") if dialect == "sqlite" else naive
    if kind == "json":
        return json.dumps(value)
    return value


def record_run(session: Session, *, actor: Actor, results: RunResults) -> AnalyticsRun:
    """Store a finished run and its snapshots in the open transaction, with an audit event."""
    actor.require_manager("refresh analytics")
    dialect = session.get_bind().dialect.name
    run = AnalyticsRun(
        kind=results.kind,
        status="done",
        cutoff=results.cutoff,
        started_at=results.started_at,
        finished_at=datetime.now(UTC),
        customers=int(len(results.segments)),
        meta=results.meta,
    )
    session.add(run)
    session.flush()
    run_id = int(run.id)  # type: ignore[arg-type]
    seg = results.segments
    bulk.write_rows(
        session,
        CustomerSegment.__table__,  # type: ignore[attr-defined]
        (
            "run_id",
            "customer_id",
            "recency_score",
            "frequency_score",
            "monetary_score",
            "rfm_segment",
            "cluster",
            "cluster_name",
        ),
        zip(
            [run_id] * len(seg),
            seg.index.tolist(),
            seg["recency_score"].tolist(),
            seg["frequency_score"].tolist(),
            seg["monetary_score"].tolist(),
            seg["rfm_segment"].tolist(),
            seg["cluster"].tolist(),
            seg["cluster_name"].tolist(),
            strict=True,
        ),
    )
    sc = results.scores
    bulk.write_rows(
        session,
        ChurnScore.__table__,  # type: ignore[attr-defined]
        (
            "run_id",
            "customer_id",
            "probability",
            "risk_level",
            "value_at_stake",
            "reasons",
            "method",
        ),
        zip(
            [run_id] * len(sc),
            sc.index.tolist(),
            [round(p, 6) for p in sc["probability"].tolist()],
            sc["risk_level"].tolist(),
            [round(v, 2) for v in sc["value_at_stake"].tolist()],
            [json.dumps(r) for r in sc["reasons"]],
            sc["method"].tolist(),
            strict=True,
        ),
    )
    bulk.write_rows(
        session,
        Finding.__table__,  # type: ignore[attr-defined]
        (
            "run_id",
            "kind",
            "customer_id",
            "deal_id",
            "follow_up_id",
            "owner_id",
            "severity",
            "why",
            "action",
            "since",
        ),
        (
            (
                run_id,
                f.kind,
                f.customer_id,
                f.deal_id,
                f.follow_up_id,
                f.owner_id,
                f.severity,
                f.why,
                f.action,
                _stored(f.since, "time", dialect),
            )
            for f in results.findings
        ),
    )
    record_event(
        session,
        actor=actor,
        action="analytics_refresh",
        entity="analytics_run",
        entity_id=run_id,
        after={
            "kind": results.kind,
            "cutoff": results.cutoff,
            "customers": run.customers,
            "scored": int(len(sc)),
            "findings": len(results.findings),
            "method": results.meta.get("method"),
        },
    )
    return run


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
    try:
        with db.session() as session:
            results, model = compute(
                session,
                settings=settings,
                cutoff=cutoff,
                kind=kind,
                progress=progress,
                timings=timings,
            )
            # Next-product suggestions: their own module, stored with the run.
            next_products, results.meta["next_products"] = products.compute_for_run(
                session, settings, cutoff
            )
        if model is not None:
            model_path = churn.save_model(model, Path(settings.model_dir), cutoff)
            results.meta["churn"]["model_file"] = str(model_path)
        say = progress or (lambda _m: None)
        say("storing the run")
        t = time.perf_counter()
        with db.transaction() as session:
            run = record_run(session, actor=actor, results=results)
            products.record_for_run(session, int(run.id), next_products)  # type: ignore[arg-type]
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
    return RefreshResult(
        run_id=int(run.id),  # type: ignore[arg-type]
        cutoff=cutoff,
        customers=run.customers,
        segments=dict(Counter(results.segments["rfm_segment"])),
        risk_levels=dict(Counter(results.scores["risk_level"])),
        findings=dict(Counter(f.kind for f in results.findings)),
        method=results.meta["method"],
        meta=results.meta,
        seconds=timings,
    )
