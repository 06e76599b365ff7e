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
