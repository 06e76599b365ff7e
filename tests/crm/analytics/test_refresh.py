from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from crm.analytics.refresh import refresh
from crm.config import Settings
from crm.models import AnalyticsRun, AuditEvent, ChurnScore, CustomerSegment, Finding, Role
from crm.services import insights
from crm.services.errors import PermissionDenied
from tests.conftest import make_user
from tests.crm.analytics.analytics_data import CUTOFF, customer, days, follow_up, purchase

LATER = CUTOFF + timedelta(days=100)


@pytest.fixture
def shop(db):
    """Five buyers; X is Loyal at CUTOFF (R3 F4) and, buying nothing more while others do, At Risk later."""
    ids = {}
    plan = {"A": (10, 1), "X": (7, 10), "B": (3, 5), "C": (2, 50), "D": (1, 100)}
    for name, (purchases, last) in plan.items():
        cid = customer(db, name, days(400))
        ids[name] = cid
        for n in range(purchases):
            purchase(db, cid, days(last + 7 * n), "20")
    for name in "ABCD":
        purchase(db, ids[name], days(-90), "20")
    follow_up(db, ids["D"], due=days(3), created=days(10))
    follow_up(db, ids["B"], due=days(3), created=days(10))  # B bought since: cleared by the reply
    return ids


@pytest.fixture
def analytics_settings(db, tmp_path):
    return Settings(_env_file=None, database_url=db.url, model_dir=str(tmp_path / "models"))  # type: ignore[call-arg]


def test_refresh_stores_runs_snapshots_and_segment_moves(db, shop, admin, analytics_settings):
    messages: list[str] = []
    first = refresh(
        db, settings=analytics_settings, actor=admin, cutoff=CUTOFF, progress=messages.append
    )
    assert messages and "building features" in messages[0]
    second = refresh(db, settings=analytics_settings, actor=admin, cutoff=LATER)
    assert second.run_id != first.run_id and first.method == "cold_start"
    with db.session() as session:
        runs = session.exec(select(AnalyticsRun).order_by(AnalyticsRun.id)).all()
        assert [(r.status, r.customers) for r in runs] == [("done", 5), ("done", 5)]
        assert "cold_start" in runs[0].meta and runs[0].meta["method"] == "cold_start"
        seg = {
            s.customer_id: s
            for s in session.exec(
                select(CustomerSegment).where(CustomerSegment.run_id == first.run_id)
            )
        }
        assert (
            seg[shop["X"]].recency_score,
            seg[shop["X"]].frequency_score,
            seg[shop["X"]].rfm_segment,
        ) == (3, 4, "Loyal")
        assert seg[shop["A"]].rfm_segment == "Champions" and seg[shop["D"]].rfm_segment == "Lost"
        assert all(s.cluster_name for s in seg.values())
        moves = insights.segment_moves(session)
        assert ("Loyal", "At Risk", 1) in moves
        insight = insights.customer_insight(session, shop["X"])
        assert insight.segment == "At Risk" and insight.method == "cold_start"
        assert (
            insight.previous_probability is not None
            and insight.churn_probability > insight.previous_probability
        )
        assert (
            len(session.exec(select(ChurnScore).where(ChurnScore.run_id == second.run_id)).all())
            == 5
        )
        overdue = session.exec(
            select(Finding).where(
                Finding.run_id == first.run_id, Finding.kind == "overdue_follow_up"
            )
        ).all()
        assert (
            [f.customer_id for f in overdue] == [shop["D"]] and overdue[0].why and overdue[0].action
        )
        events = session.exec(
            select(AuditEvent).where(AuditEvent.action == "analytics_refresh")
        ).all()
        assert sorted(e.entity_id for e in events) == sorted(
            [str(first.run_id), str(second.run_id)]
        )
        counts = {c.segment: (c.customers, c.previous) for c in insights.segment_counts(session)}
        assert counts["At Risk"][0] >= 1


def test_a_rep_cannot_refresh_and_nothing_is_written(db, shop, analytics_settings):
    _, rep = make_user(db, "Rita Rep", Role.rep)
    with pytest.raises(PermissionDenied):
        refresh(db, settings=analytics_settings, actor=rep, cutoff=CUTOFF)
    with db.session() as session:
        assert session.exec(select(AnalyticsRun)).all() == []


def test_a_failed_refresh_leaves_a_failed_run_and_no_snapshot(
    db, shop, admin, analytics_settings, monkeypatch
):
    from crm.analytics import refresh as module

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(module, "record_run", boom)
    with pytest.raises(RuntimeError):
        refresh(db, settings=analytics_settings, actor=admin, cutoff=CUTOFF)
    with db.session() as session:
        runs = session.exec(select(AnalyticsRun)).all()
        assert [r.status for r in runs] == ["failed"] and "disk full" in runs[0].meta["error"]
        assert session.exec(select(CustomerSegment)).all() == []
        assert insights.latest_run(session) is None
