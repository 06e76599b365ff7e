"""Reading a customer's segment and churn risk: one query, three cases."""

from __future__ import annotations

from datetime import timedelta

from crm.models import AnalyticsRun, ChurnScore, CustomerSegment, utcnow
from crm.services import insights
from tests.factories import add_customer


def _run(session, *, finished_hours_ago: float, status: str = "done") -> AnalyticsRun:
    finished = utcnow() - timedelta(hours=finished_hours_ago)
    run = AnalyticsRun(status=status, cutoff=finished, started_at=finished, finished_at=finished)
    session.add(run)
    session.flush()
    return run


def _score(session, run, customer_id, probability, level="medium", reasons=None) -> None:
    session.add(
        ChurnScore(
            run_id=run.id,
            customer_id=customer_id,
            probability=probability,
            risk_level=level,
            reasons=reasons,
        )
    )


def test_insight_reads_the_latest_run_and_the_score_before_it(db, admin):
    scored = add_customer(db, admin, name="Scored", email="a@scored.example")
    absent = add_customer(db, admin, name="Absent", email="b@absent.example")
    with db.session() as session:
        assert insights.customer_insight_and_scored(session, scored.id) == (None, False)
    with db.transaction() as session:
        older = _run(session, finished_hours_ago=48)
        _score(session, older, scored.id, 0.2, "low")
        newest = _run(session, finished_hours_ago=1)
        _score(session, newest, scored.id, 0.7, "high", ["no reply to 2 emails in 21 days"])
        session.add(
            CustomerSegment(
                run_id=newest.id,
                customer_id=scored.id,
                recency_score=2,
                frequency_score=4,
                monetary_score=4,
                rfm_segment="At Risk",
                cluster_name="big spenders gone quiet",
            )
        )
        _run(session, finished_hours_ago=0, status="failed")  # never read
        newest_finished = newest.finished_at
    with db.session() as session:
        insight, any_run = insights.customer_insight_and_scored(session, scored.id)
        assert any_run and insight is not None
        assert (insight.segment, insight.cluster_name) == ("At Risk", "big spenders gone quiet")
        assert (insight.churn_probability, insight.risk_level) == (0.7, "high")
        assert insight.previous_probability == 0.2
        assert insight.reasons == ["no reply to 2 emails in 21 days"]
        assert insight.scored_at == newest_finished
        # Scoring has run, but not for this customer: the card says so rather than "not yet".
        assert insights.customer_insight_and_scored(session, absent.id) == (None, True)
        assert insights.customer_insight(session, absent.id) is None


def test_every_reason_the_churn_model_writes_is_read_back_as_its_kind():
    """The digest chooses actions by reason kind: a change of wording in the model must show
    here, not as a digest that quietly falls back to a generic action."""
    from crm.analytics import churn

    base = {
        "recency_days": 60.0, "avg_purchase_gap_days": 20.0, "purchases_90": 1,
        "purchases_prev_90": 4, "value_90": 100.0, "value_prev_90": 900.0, "purchase_days": 2,
        "days_since_inbound": 50.0, "unanswered_inbound": 2, "unanswered_days": 21.0,
        "days_since_outbound": 45.0, "interactions_90": 1, "interactions_prev_90": 5,
        "lost_deals_90": 1, "overdue_follow_ups": 3, "tenure_days": 30.0,
        "satisfaction_latest": 2.0,
    }  # fmt: skip
    variants = [
        {},
        {"avg_purchase_gap_days": float("nan")},  # no rhythm yet
        {"avg_purchase_gap_days": 1.0},  # "usually every day"
        {"purchases_prev_90": 0},  # spend, not orders
        {"purchase_days": 0},
        {"purchase_days": 1},
        {"days_since_outbound": float("nan")},  # never reached out
        {"unanswered_inbound": 1, "unanswered_days": 1.0},
        {"lost_deals_90": 2, "overdue_follow_ups": 1, "tenure_days": 1.0},
    ]
    seen: set[str] = set()
    for change in variants:
        row = {**base, **change}
        for group, (_columns, words) in churn.REASON_GROUPS.items():
            text = words(row)
            if text is None:
                continue
            reason = insights.read_reason(text)
            assert reason.kind == group, text
            optional = group in ("recency", "outreach")  # "(usually every N)", "never reached out"
            assert all(n is not None for n in reason.numbers) or optional, text
            seen.add(group)
    assert seen == set(churn.REASON_GROUPS)
    assert insights.read_reason("has never bought").numbers == (0,)
    assert insights.read_reason("no purchase in 30 days (usually every day)").numbers == (30, 1)
    assert insights.read_reason("something new").kind is None
