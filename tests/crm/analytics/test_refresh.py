from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from crm.analytics.refresh import refresh
from crm.config import Settings
from crm.models import (
    AnalyticsRun,
    AuditEvent,
    Channel,
    ChurnScore,
    CustomerSegment,
    DealStatus,
    Direction,
    Finding,
    FollowUp,
    Role,
)
from crm.services import insights
from crm.services.errors import PermissionDenied
from tests.conftest import make_user
from tests.crm.analytics.analytics_data import (
    CUTOFF,
    customer,
    days,
    deal,
    follow_up,
    interaction,
    purchase,
)

LATER = CUTOFF + timedelta(days=100)


@pytest.fixture
def shop(db):
    """Five buyers; X is Loyal at CUTOFF (R3 F4) and, buying nothing more, At Risk later."""
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
    assert messages[:2] == ["reading the store", "building features"]
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


def test_refresh_flags_rotting_deals_as_of_its_cutoff(db, shop, admin, analytics_settings):
    # Qualified allows 14 days: idle since it was opened 50 days before the cutoff (D bought
    # 100 days before); D buys again 90 days after the cutoff, which resets the clock for LATER.
    idle = deal(db, shop["D"], days(50), DealStatus.open, "100", stage="qualified")
    # A deleted interaction on the deal is no activity; won deals never rot.
    interaction(
        db, shop["D"], days(5), Channel.call, Direction.outbound, deleted=True, deal_id=idle
    )
    deal(db, shop["D"], days(300), DealStatus.won, "100", closed=days(200), stage="won")
    # Negotiation allows 7 days; X last bought 10 days before the cutoff and never again.
    planned = deal(db, shop["X"], days(60), DealStatus.open, "100", stage="negotiation")
    with db.transaction() as session:
        # A next step with X, made after the cutoff: it counts for LATER only.
        session.add(FollowUp(customer_id=shop["X"], due_at=days(-150), created_at=days(-1)))
    # No interaction at all: idle since the deal was opened.
    other = deal(db, customer(db, "E", days(400)), days(60), DealStatus.open, "1", stage="lead")
    first = refresh(db, settings=analytics_settings, actor=admin, cutoff=CUTOFF)
    second = refresh(db, settings=analytics_settings, actor=admin, cutoff=LATER)
    with db.session() as session:

        def rotting(run_id):
            query = select(Finding).where(Finding.run_id == run_id, Finding.kind == "rotting_deal")
            return {f.deal_id: f.why for f in session.exec(query)}

        at_cutoff = rotting(first.run_id)
        assert sorted(at_cutoff) == sorted([idle, planned, other])
        assert "50 days in qualified (the stage allows 14)" in at_cutoff[idle]
        assert "10 days in negotiation" in at_cutoff[planned]
        assert list(rotting(second.run_id)) == [other]


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


@pytest.mark.parametrize("failing", ["features_at", "train"])
def test_a_refresh_failing_beside_its_second_connection_fails_whole_and_does_not_hang(
    db, shop, admin, analytics_settings, monkeypatch, failing
):
    """Suggestions, values and topics run on a second connection and wait for the snapshot
    and the segments; the main work failing before the segments exist or after ends the
    refresh as failed, and the work beside it ends too."""
    import threading

    from crm.analytics import churn
    from crm.analytics import refresh as module

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(module if failing == "features_at" else churn, failing, boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        refresh(db, settings=analytics_settings, actor=admin, cutoff=CUTOFF)
    assert not [t for t in threading.enumerate() if t.name.startswith("refresh-beside")]
    with db.session() as session:
        assert [r.status for r in session.exec(select(AnalyticsRun))] == ["failed"]
        assert session.exec(select(CustomerSegment)).all() == []


def test_topics_beside_the_main_work_get_the_runs_segments(
    db, shop, admin, analytics_settings, monkeypatch
):
    from crm.analytics import refresh as module

    seen: list[dict[int, str]] = []
    real_topics = module.topics_run.compute

    def topics_seen(session, settings, segments):
        seen.append(segments().to_dict())
        return real_topics(session, settings, segments)

    monkeypatch.setattr(module.topics_run, "compute", topics_seen)
    result = refresh(db, settings=analytics_settings, actor=admin, cutoff=CUTOFF)
    with db.session() as session:
        stored = dict(
            session.exec(
                select(CustomerSegment.customer_id, CustomerSegment.rfm_segment).where(
                    CustomerSegment.run_id == result.run_id
                )
            ).all()
        )
    assert seen == [stored] and len(stored) == 5


def test_a_failing_read_on_the_second_connection_fails_the_refresh(
    db, shop, admin, analytics_settings, monkeypatch
):
    """The follow-up rules wait for the email threads read beside them: when that read
    fails, the refresh fails with its error instead of waiting."""
    from crm.analytics import refresh as module

    def boom(session, now):
        raise RuntimeError("connection lost")

    monkeypatch.setattr(module, "email_threads", boom)
    with pytest.raises(RuntimeError, match="connection lost"):
        refresh(db, settings=analytics_settings, actor=admin, cutoff=CUTOFF)
    with db.session() as session:
        assert [r.status for r in session.exec(select(AnalyticsRun))] == ["failed"]


def test_a_refresh_leaves_no_scratch_file_behind_stored_or_failed(
    db, shop, admin, analytics_settings, monkeypatch, tmp_path
):
    """On SQLite the big parts are staged in a scratch file next to the store's own while
    the main work runs; it goes when the run is stored, and when the refresh fails."""
    import os
    from pathlib import Path

    import sqlalchemy as sa

    from crm.analytics import refresh as module
    from crm.services import bulk

    made: list[str] = []
    real_stage = bulk.Stage

    def stage(directory=None):
        found = real_stage(directory)
        made.append(found.path)
        return found

    monkeypatch.setattr(bulk, "Stage", stage)
    name = sa.engine.make_url(db.url).database
    here = Path(name).resolve().parent if db.dialect == "sqlite" else None
    first = refresh(db, settings=analytics_settings, actor=admin, cutoff=CUTOFF)
    with db.session() as session:
        stored = session.exec(
            select(CustomerSegment.customer_id).where(CustomerSegment.run_id == first.run_id)
        ).all()
    assert sorted(stored) == sorted(shop.values())
    if db.dialect == "sqlite":  # staged next to the store, and gone
        assert len(made) == 1 and Path(made[0]).parent == here
    else:
        assert made == []  # PostgreSQL stores as it goes, on a second connection
    assert not any(os.path.exists(p) for p in made)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(module, "record_run", boom)
    with pytest.raises(RuntimeError):
        refresh(db, settings=analytics_settings, actor=admin, cutoff=LATER)
    assert len(made) == (2 if db.dialect == "sqlite" else 0)
    assert not any(os.path.exists(p) for p in made)


def test_reasons_are_stored_as_the_json_of_their_texts():
    import json

    from crm.analytics.refresh import json_strings

    for texts in ([], ["no purchase in 45 days"], ['said "stop"\n', "é \u2028 \\ 😀", "a\x00b"]):
        assert json_strings(texts) == json.dumps(texts)
        assert json.loads(json_strings(texts)) == texts


def test_each_owner_keeps_its_most_urgent_findings_and_every_count(db, admin, tmp_path):
    rep, _ = make_user(db, "Rita", Role.rep)
    settings = Settings(
        _env_file=None, database_url=db.url, model_dir=str(tmp_path), findings_per_owner=2
    )  # type: ignore[call-arg]
    late = {}
    for days_late in (3, 20, 10):
        cid = customer(db, f"Late {days_late}", days(400), owner_id=rep.id)
        late[days_late] = follow_up(db, cid, due=days(days_late), created=days(30))
    nobody = follow_up(db, customer(db, "Nobody's", days(400)), due=days(5), created=days(30))
    # Only our own call, two days ago: touched recently, so not going quiet.
    called = customer(db, "Called", days(400), owner_id=rep.id)
    interaction(db, called, days(2), Channel.call, Direction.outbound)
    with db.transaction() as session:
        for fid in late.values():
            session.get(FollowUp, fid).owner_id = rep.id  # type: ignore[union-attr]
    result = refresh(db, settings=settings, actor=admin, cutoff=CUTOFF)
    assert result.findings["overdue_follow_up"] == 4
    flagged = result.meta["findings"]["flagged"]
    assert flagged["overdue_follow_up"] == {str(rep.id): 3, "none": 1}
    # The three never-touched customers of Rita are quiet; the one she called is not.
    assert flagged["going_quiet"] == {str(rep.id): 3, "none": 1}
    with db.session() as session:
        stored = session.exec(select(Finding).where(Finding.run_id == result.run_id)).all()
        overdue = {f.follow_up_id for f in stored if f.kind == "overdue_follow_up"}
        assert overdue == {late[20], late[10], nobody}  # Rita's two most overdue
        quiet = [f.customer_id for f in stored if f.kind == "going_quiet"]
        assert len(quiet) == 3 and called not in quiet
        # What the team roll-up counts: everything flagged, not only what was stored.
        counts = insights.finding_counts(session)
        assert counts[(rep.id, "overdue_follow_up")] == 3 and counts[(None, "going_quiet")] == 1


def test_refresh_stores_each_customers_expected_value_as_of_its_cutoff(db, shop, admin, tmp_path):
    from crm.models import CustomerValue

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=db.url, model_dir=str(tmp_path / "m"), value_horizon_months=6
    )
    run = refresh(db, settings=settings, actor=admin, cutoff=CUTOFF)
    with db.session() as session:
        rows = session.exec(select(CustomerValue).where(CustomerValue.run_id == run.run_id)).all()
        values = {v.customer_id: v for v in rows}
    assert set(values) == set(shop.values()) and {v.horizon_months for v in rows} == {6}
    a, d = values[shop["A"]], values[shop["D"]]  # A: ten recent purchases; D: one, 100 days ago
    assert a.expected_spend > d.expected_spend and a.expected_purchases > d.expected_purchases
    assert all(0 < v.p_alive <= 1 and v.expected_spend >= 0 for v in rows)


def test_a_customer_erased_while_a_refresh_runs_is_left_out_of_the_stored_run(
    db, shop, admin, analytics_settings, monkeypatch
):
    """The refresh read X before the erasure; the run it stores after holds nothing about X."""
    from crm.analytics import products
    from crm.models import ChurnScore, CustomerValue, Finding, ProductSuggestion
    from crm.services import erasure

    real = products.compute_for_run

    def erase_midway(session, settings, cutoff):
        found = real(session, settings, cutoff)
        with db.transaction() as s:
            erasure.forget_customer(
                s,
                actor=admin,
                customer_id=shop["X"],
                reason="asked",
                key=erasure.hashing_key(s, None),
            )
        return found

    monkeypatch.setattr(products, "compute_for_run", erase_midway)
    result = refresh(db, settings=analytics_settings, actor=admin, cutoff=CUTOFF)
    with db.session() as s:
        for model in (CustomerSegment, ChurnScore, CustomerValue, ProductSuggestion, Finding):
            about = set(s.exec(select(model.customer_id).where(model.run_id == result.run_id)))
            assert shop["X"] not in about, model.__name__
        segmented = set(
            s.exec(
                select(CustomerSegment.customer_id).where(CustomerSegment.run_id == result.run_id)
            )
        )
        assert segmented == {shop[n] for n in "ABCD"}
