"""Retention: raw mail and old interactions go when the settings say, in audited batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import func, select

from crm.models import (
    AuditEvent,
    Channel,
    Direction,
    Interaction,
    InteractionCreate,
    QuarantinedMessage,
)
from crm.services import audit as audit_svc
from crm.services import interactions, retention
from crm.services.actor import Actor
from crm.services.errors import PermissionDenied
from tests.factories import add_customer

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RAW_META = {
    "matched_on": "email",
    "quoted_text": "> earlier words",
    "signature": "Jane Doe\nCEO",
    "recipient": "Jane <jane@acme.com>",
}


def _world(db, admin) -> dict[str, int]:
    c = add_customer(db, admin)
    ids = {}
    with db.transaction() as session:
        for key, channel, days, meta, amount in (
            ("old_email", Channel.email, 40, RAW_META, None),
            ("new_email", Channel.email, 5, RAW_META, None),
            ("ancient_note", Channel.note, 400, None, None),
            ("ancient_purchase", Channel.purchase, 400, None, Decimal("50")),
        ):
            row, _ = interactions.record_interaction(
                session,
                actor=admin,
                interaction_in=InteractionCreate(
                    customer_id=c.id,
                    channel=channel,
                    direction=Direction.inbound,
                    occurred_at=NOW - timedelta(days=days),
                    body=f"{key} text",
                    meta=meta,
                    amount=amount,
                    currency="USD" if amount else None,
                ),
            )
            ids[key] = row.id
        for key, days in (("old_q", 40), ("new_q", 2)):
            q = QuarantinedMessage(
                source="imap:x",
                external_id=key,
                reason="unknown",
                raw=b"From: x@y.test",
                received_at=NOW - timedelta(days=days),
            )
            session.add(q)
            session.flush()
            ids[key] = q.id
    return ids


def _apply(db, actor, batch=retention.BATCH, **days) -> list[retention.RetentionBatch]:
    batches = []
    while True:
        with db.transaction() as session:
            done = retention.apply_batch(session, actor=actor, now=NOW, batch=batch, **days)
        batches.append(done)
        if not done.total:
            return batches


def test_raw_mail_goes_after_n_days_and_the_text_stays(db, admin):
    ids = _world(db, admin)
    settings = {"raw_mail_days": 30, "interactions_days": None}
    with db.session() as session:
        due = retention.status(session, now=NOW, **settings).due
    assert due == {"raw_mail_stripped": 1, "quarantine_deleted": 1}
    batches = _apply(db, admin, **settings)
    assert sum(b.raw_mail_stripped for b in batches) == 1
    with db.session() as session:
        old = session.get(Interaction, ids["old_email"])
        new = session.get(Interaction, ids["new_email"])
        assert old.body == "old_email text" and old.meta == {"matched_on": "email"}
        assert new.meta == RAW_META
        assert session.get(QuarantinedMessage, ids["old_q"]) is None
        assert session.get(QuarantinedMessage, ids["new_q"]) is not None
        report = retention.status(session, now=NOW, **settings)
        assert report.due == {"raw_mail_stripped": 0, "quarantine_deleted": 0}
        assert report.last_runs[0]["raw_mail_stripped"] == 1
        assert report.last_runs[0]["quarantine_deleted"] == 1
        assert audit_svc.verify_chain(session).ok


def test_old_interactions_go_in_batches_and_purchases_stay(db, admin):
    ids = _world(db, admin)
    batches = _apply(db, admin, batch=1, raw_mail_days=None, interactions_days=365)
    assert [b.interactions_deleted for b in batches] == [1, 0]
    with db.session() as session:
        assert session.get(Interaction, ids["ancient_note"]) is None
        assert session.get(Interaction, ids["ancient_purchase"]).amount == Decimal("50.00")
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "retention")).all()
    assert [e.after["interactions_deleted"] for e in events] == [1]


def test_only_admins_apply_retention(db, admin):
    _world(db, admin)
    with pytest.raises(PermissionDenied), db.transaction() as session:
        retention.apply_batch(
            session, actor=Actor("m", role="manager"), raw_mail_days=1, interactions_days=None
        )  # type: ignore[arg-type]


def test_old_analytics_runs_lose_their_per_customer_results_but_the_newest_two_stay(db, admin):
    from crm.models import AnalyticsRun, ChurnScore, CustomerSegment
    from tests.factories import add_scoring_run

    people = [add_customer(db, admin, f"Person {n}", f"p{n}@acme.com").id for n in range(3)]
    ages = (90, 60, 45, 40)  # days before NOW; 40 and 45 are the newest two, both kept
    runs = {
        age: add_scoring_run(db, people, [0.2, 0.5, 0.9], finished=NOW - timedelta(days=age))
        for age in ages
    }
    with db.session() as session:
        status = retention.status(
            session, raw_mail_days=None, interactions_days=None, analytics_days=30, now=NOW
        )
    assert status.due == {"analytics_runs_pruned": 2}
    batches = _apply(db, admin, raw_mail_days=None, interactions_days=None, analytics_days=30)
    assert [b.analytics_runs_pruned for b in batches] == [1, 1, 0]  # one run a batch, oldest first
    assert sum(b.analytics_rows_deleted for b in batches) == 2 * 2 * len(people)
    with db.session() as session:
        left = {
            run: session.exec(select(func.count()).select_from(ChurnScore).where(ChurnScore.run_id == run)).one()
            + session.exec(select(func.count()).select_from(CustomerSegment).where(CustomerSegment.run_id == run)).one()
            for run in runs.values()
        }
        pruned = {r.id: (r.meta or {}).get("pruned_at") for r in session.exec(select(AnalyticsRun))}
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "retention")).all()
    assert left == {runs[90]: 0, runs[60]: 0, runs[45]: 6, runs[40]: 6}
    assert bool(pruned[runs[90]]) and bool(pruned[runs[60]]) and not pruned[runs[45]]
    assert [e.after["analytics_run"] for e in events] == [runs[90], runs[60]]
    assert _apply(db, admin, raw_mail_days=None, interactions_days=None, analytics_days=30)[0].total == 0
