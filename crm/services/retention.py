"""Retention: personal data is not kept longer than the settings say.

- ``CRM_RETENTION_RAW_MAIL_DAYS``: after N days the raw mail goes: quarantined raw messages
  are deleted, and a captured email keeps its own text (the interaction's body) but loses the
  parts of the raw message kept beside it (quoted text, signature, forward note, attachment
  names, recipients).
- ``CRM_RETENTION_INTERACTIONS_DAYS`` (optional): interactions older than N days are deleted;
  purchases stay (amounts and dates are accounting records).
- ``CRM_RETENTION_ANALYTICS_DAYS`` (default 35): the per-customer results of analytics runs
  finished longer ago are deleted (one run per batch), the newest two runs always kept; the run
  itself stays, with its summary and its per-segment topics, marked ``pruned_at``.

Work is done in batches, each in its own transaction with its own audit event, so a large
first run does not hold one huge transaction and can be stopped and resumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm.models import (
    AnalyticsRun,
    AuditEvent,
    Channel,
    ChurnScore,
    CustomerSegment,
    CustomerValue,
    Finding,
    Interaction,
    ProductSuggestion,
    QuarantinedMessage,
    utcnow,
)
from crm.services.actor import Actor
from crm.services.audit import record_event

BATCH = 5_000
# The parts of a captured email's meta that come from the raw message, not its own text.
RAW_MAIL_KEYS = (
    "quoted_text",
    "quoted_text_chars",
    "signature",
    "forward_note",
    "attachments",
    "recipient",
    "forwarded_from",
    "references",
)


@dataclass
class RetentionBatch:
    raw_mail_stripped: int = 0
    quarantine_deleted: int = 0
    interactions_deleted: int = 0
    analytics_runs_pruned: int = 0
    analytics_rows_deleted: int = 0

    @property
    def total(self) -> int:
        return (
            self.raw_mail_stripped
            + self.quarantine_deleted
            + self.interactions_deleted
            + self.analytics_runs_pruned
            + self.analytics_rows_deleted
        )


@dataclass
class RetentionStatus:
    raw_mail_days: int | None
    interactions_days: int | None
    analytics_days: int | None = None
    due: dict[str, int] = field(default_factory=dict)
    last_runs: list[dict[str, Any]] = field(default_factory=list)


def holds_raw_mail(meta: dict[str, Any] | None) -> bool:
    """Whether an interaction's meta keeps parts of the raw message (see RAW_MAIL_KEYS)."""
    return bool(meta) and any(key in meta for key in RAW_MAIL_KEYS)  # type: ignore[operator]


def _raw_mail_due(raw_mail_days: int, now: datetime) -> tuple[Any, Any]:
    cutoff = now - timedelta(days=raw_mail_days)
    stripped = sa.and_(
        col(Interaction.channel) == Channel.email,
        col(Interaction.occurred_at) < cutoff,
        col(Interaction.holds_raw_mail),  # meta is sealed: the flag says what it holds
    )
    quarantined = col(QuarantinedMessage.received_at) < cutoff
    return stripped, quarantined


# Per-customer results of a run: what a refresh writes for every customer.
RUN_SNAPSHOTS: tuple[Any, ...] = (
    CustomerSegment,
    ChurnScore,
    CustomerValue,
    Finding,
    ProductSuggestion,
)
KEEP_NEWEST_RUNS = 2


def prunable_runs(session: Session, analytics_days: int, now: datetime) -> list[int]:
    """Runs (oldest first) whose per-customer results are due to go: finished before the
    cutoff, not among the newest two done runs, not pruned yet."""
    newest = set(
        session.exec(
            select(AnalyticsRun.id)
            .where(AnalyticsRun.status == "done")
            .order_by(col(AnalyticsRun.id).desc())
            .limit(KEEP_NEWEST_RUNS)
        )
    )
    rows = session.exec(
        select(AnalyticsRun.id, AnalyticsRun.meta)
        .where(
            col(AnalyticsRun.status) != "running",
            col(AnalyticsRun.finished_at) < now - timedelta(days=analytics_days),
        )
        .order_by(col(AnalyticsRun.id))
    )
    return [
        run_id
        for run_id, meta in rows
        if run_id is not None and run_id not in newest and not (meta or {}).get("pruned_at")
    ]


def _prune_run(session: Session, run_id: int, now: datetime) -> int:
    deleted = 0
    for model in RUN_SNAPSHOTS:
        result = session.execute(sa.delete(model).where(col(model.run_id) == run_id))
        deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
    run = session.get(AnalyticsRun, run_id)
    if run is not None:
        run.meta = {**(run.meta or {}), "pruned_at": now.isoformat()}
        session.add(run)
    return deleted


def _old_interactions(interactions_days: int, now: datetime) -> Any:
    return sa.and_(
        col(Interaction.occurred_at) < now - timedelta(days=interactions_days),
        col(Interaction.channel) != Channel.purchase,
    )


def apply_batch(
    session: Session,
    *,
    actor: Actor,
    raw_mail_days: int | None,
    interactions_days: int | None,
    analytics_days: int | None = None,
    now: datetime | None = None,
    batch: int = BATCH,
) -> RetentionBatch:
    """One batch of what is due; call until ``total`` is 0. Admins (and the scheduler)."""
    actor.require_admin("apply retention")
    now = now or utcnow()
    done = RetentionBatch()
    pruned_run = None
    if analytics_days:
        due_runs = prunable_runs(session, analytics_days, now)
        if due_runs:
            pruned_run = due_runs[0]
            done.analytics_rows_deleted = _prune_run(session, pruned_run, now)
            done.analytics_runs_pruned = 1
    if interactions_days:
        ids = list(
            session.exec(
                select(Interaction.id).where(_old_interactions(interactions_days, now)).limit(batch)
            )
        )
        if ids:
            session.execute(sa.delete(Interaction).where(col(Interaction.id).in_(ids)))
        done.interactions_deleted = len(ids)
    if raw_mail_days:
        stripped, quarantined = _raw_mail_due(raw_mail_days, now)
        rows = session.execute(
            sa.select(Interaction.id, Interaction.meta).where(stripped).limit(batch)  # type: ignore[call-overload]
        ).all()
        if rows:
            table = Interaction.__table__  # type: ignore[attr-defined]
            session.execute(
                sa.update(table)
                .where(table.c.id == sa.bindparam("row_id"))
                .values(meta=sa.bindparam("new_meta"), holds_raw_mail=False),
                [
                    {
                        "row_id": row_id,
                        "new_meta": {
                            k: v for k, v in (meta or {}).items() if k not in RAW_MAIL_KEYS
                        }
                        or None,
                    }
                    for row_id, meta in rows
                ],
            )
        done.raw_mail_stripped = len(rows)
        q_ids = list(session.exec(select(QuarantinedMessage.id).where(quarantined).limit(batch)))
        if q_ids:
            session.execute(
                sa.delete(QuarantinedMessage).where(col(QuarantinedMessage.id).in_(q_ids))
            )
        done.quarantine_deleted = len(q_ids)
    if done.total:
        record_event(
            session,
            actor=actor,
            action="retention",
            entity="store",
            after={
                "raw_mail_days": raw_mail_days,
                "interactions_days": interactions_days,
                "raw_mail_stripped": done.raw_mail_stripped,
                "quarantine_deleted": done.quarantine_deleted,
                "interactions_deleted": done.interactions_deleted,
                **(
                    {"analytics_days": analytics_days, "analytics_run": pruned_run,
                     "analytics_rows_deleted": done.analytics_rows_deleted}
                    if pruned_run is not None
                    else {}
                ),
            },
        )
    return done


def status(
    session: Session,
    *,
    raw_mail_days: int | None,
    interactions_days: int | None,
    analytics_days: int | None = None,
    now: datetime | None = None,
    runs: int = 10,
) -> RetentionStatus:
    """What the settings keep, what is due now, and the last batches applied."""
    now = now or utcnow()
    result = RetentionStatus(raw_mail_days, interactions_days, analytics_days)

    def count(model: Any, where: Any) -> int:
        return int(session.exec(select(sa.func.count()).select_from(model).where(where)).one())

    if raw_mail_days:
        stripped, quarantined = _raw_mail_due(raw_mail_days, now)
        result.due["raw_mail_stripped"] = count(Interaction, stripped)
        result.due["quarantine_deleted"] = count(QuarantinedMessage, quarantined)
    if interactions_days:
        result.due["interactions_deleted"] = count(
            Interaction, _old_interactions(interactions_days, now)
        )
    if analytics_days:
        result.due["analytics_runs_pruned"] = len(prunable_runs(session, analytics_days, now))
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.action == "retention")
        .order_by(col(AuditEvent.id).desc())
        .limit(runs)
    )
    result.last_runs = [{"at": e.at, "actor": e.actor, **(e.after or {})} for e in events]
    return result
