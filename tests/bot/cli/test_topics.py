"""`crmbot analytics topics` and the card's "Talks about" line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from crm.models import AnalyticsRun, Channel, Direction, Interaction, SegmentTerm
from tests.factories import add_customer

pytestmark = pytest.mark.usefixtures("cli_timezone")


def _talk(db, customer_id: int, text: str, n: int) -> None:
    with db.transaction() as session:
        session.add(
            Interaction(
                customer_id=customer_id, channel=Channel.email, direction=Direction.inbound,
                occurred_at=datetime.now(UTC) - timedelta(days=2), body=text, source="test",
                external_id=f"cli-talk-{n}",
            )
        )  # fmt: skip


def test_topics_command_lists_segments_and_the_card_says_what_they_talk_about(crmbot, db, admin):
    code, out, _ = crmbot("analytics", "topics")
    assert code == 0 and "No topics yet" in out
    texts = ["The delivery is late.", "Late delivery again!", "Refund the late delivery."]
    ids = []
    for n, text in enumerate(texts):
        c = add_customer(db, admin, name=f"Person {n}", email=f"p{n}@shop{n}.com")
        ids.append(c.id)
        _talk(db, c.id, text, n)
    assert crmbot("analytics", "refresh")[0] == 0
    code, out, _ = crmbot("analytics", "topics", "--json")
    rows = json.loads(out)
    assert code == 0 and rows
    said = {t["term"]: t["count"] for r in rows for t in r["terms"]}
    assert said["late delivery"] == 2  # "delivery is late" makes no pair: "is" stands between
    code, out, _ = crmbot("customer", "show", f"#{ids[1]}")
    assert code == 0 and "Talks about: late delivery" in out
    code, out, _ = crmbot("customer", "show", f"#{ids[1]}", "--json")
    assert "late delivery" in json.loads(out)["talks_about"]
    code, _, err = crmbot("analytics", "topics", "--segment", "Nowhere")
    assert code == 2 and "No topics for a segment named 'Nowhere'" in err
    code, _, err = crmbot("analytics", "topics", "--since", "someday")
    assert code == 2 and "not a date" in err


def test_rising_terms_compare_this_period_with_the_one_before(crmbot, db):
    now = datetime.now(UTC)
    with db.transaction() as session:
        old = AnalyticsRun(cutoff=now, status="done", finished_at=now - timedelta(days=10))
        new = AnalyticsRun(cutoff=now, status="done", finished_at=now - timedelta(days=1))
        session.add_all([old, new])
        session.flush()
        for run, counts in (
            (old, {"invoice": 10, "renewal": 10}),
            (new, {"invoice": 4, "outage": 16}),
        ):
            for term, count in counts.items():
                session.add(SegmentTerm(run_id=run.id, segment="Loyal", term=term, count=count))
    code, out, _ = crmbot("analytics", "topics", "--json")
    [loyal] = json.loads(out)
    assert loyal["segment"] == "Loyal"
    assert [r["term"] for r in loyal["rising"]] == ["outage"]
    assert loyal["rising"][0]["share"] == pytest.approx(0.8) and loyal["rising"][0]["before"] == 0
