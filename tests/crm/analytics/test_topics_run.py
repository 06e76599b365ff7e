"""The topics step of a refresh, on a real store (SQLite and PostgreSQL): incremental counts,
keywords, segment terms, erasure."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlmodel import select

from crm.analytics import topics_run
from crm.analytics.refresh import refresh
from crm.config import Settings
from crm.models import Channel, CustomerTopics, Direction, Interaction, SegmentTerm, TopicTerm
from crm.services import erasure, insights
from tests.crm.analytics.analytics_data import CUTOFF, customer, days, purchase

_ids = itertools.count(1)


def said(db, customer_id: int, text: str, when=None, channel=Channel.email) -> int:
    with db.transaction() as session:
        row = Interaction(
            customer_id=customer_id,
            channel=channel,
            direction=Direction.inbound,
            occurred_at=when or days(5),
            body=text,
            source="test",
            external_id=f"topic-{next(_ids)}",
        )
        session.add(row)
        session.flush()
        return int(row.id)  # type: ignore[arg-type]


@pytest.fixture
def settings(db, tmp_path):
    return Settings(_env_file=None, database_url=db.url, model_dir=str(tmp_path / "models"))  # type: ignore[call-arg]


@pytest.fixture
def talkers(db):
    """Ada writes about invoices, Bob about deliveries, Cy about both; all have bought."""
    ids = {}
    for name in ("Ada Lovelace", "Bob Builder", "Cy Twombly"):
        cid = customer(db, name, days(300))
        purchase(db, cid, days(100), "50")
        ids[name.split()[0]] = cid
    said(db, ids["Ada"], "The invoice address is wrong on the last invoice.")
    said(db, ids["Ada"], "Please send a corrected invoice with the right invoice address.")
    said(db, ids["Bob"], "Our delivery is late again; the courier lost the delivery note.")
    said(
        db,
        ids["Cy"],
        "Delivery fine, but the invoice address needs changing.",
        channel=Channel.slack,
    )
    return ids


def keywords_of(db, cid):
    with db.session() as s:
        return insights.talks_about(s, cid)


def test_keywords_come_from_each_customers_own_text(db, talkers, admin, settings):
    result = refresh(db, settings=settings, actor=admin, cutoff=CUTOFF)
    assert result.meta["topics"]["interactions"] == 4 and result.meta["topics"]["customers"] == 3
    assert "invoice address" in keywords_of(db, talkers["Ada"])
    assert "delivery" in keywords_of(db, talkers["Bob"])
    assert not {"invoice", "invoice address"} & set(keywords_of(db, talkers["Bob"]))
    # Names are not topics: not the customer's own, not anyone's.
    everything = {k for cid in talkers.values() for k in keywords_of(db, cid)}
    assert not {"ada", "lovelace", "bob", "builder"} & everything
    with db.session() as s:
        df = dict(s.exec(select(TopicTerm.term, TopicTerm.customers)).all())
        terms = s.exec(select(SegmentTerm).where(SegmentTerm.run_id == result.run_id)).all()
    assert df["invoice address"] == 2 and df["delivery"] == 2
    assert sum(t.count for t in terms if t.term == "invoice address") == 3


def test_a_second_refresh_reads_only_what_is_new(db, talkers, admin, settings):
    refresh(db, settings=settings, actor=admin, cutoff=CUTOFF)
    with db.session() as s:
        before = {
            r.customer_id: (r.updated_at, r.counts, r.keywords)
            for r in s.exec(select(CustomerTopics))
        }
    again = refresh(db, settings=settings, actor=admin, cutoff=CUTOFF + timedelta(hours=1))
    assert again.meta["topics"]["interactions"] == 0
    with db.session() as s:
        same = {
            r.customer_id: (r.updated_at, r.counts, r.keywords)
            for r in s.exec(select(CustomerTopics))
        }
    assert same == before
    said(db, talkers["Bob"], "Refund for the damaged parcel, please: the parcel arrived broken.")
    third = refresh(db, settings=settings, actor=admin, cutoff=CUTOFF + timedelta(hours=2))
    assert third.meta["topics"]["interactions"] == 1 and third.meta["topics"]["customers"] == 1
    with db.session() as s:
        after = {
            r.customer_id: (r.updated_at, r.counts, r.keywords)
            for r in s.exec(select(CustomerTopics))
        }
    assert after[talkers["Ada"]] == before[talkers["Ada"]]
    assert after[talkers["Cy"]] == before[talkers["Cy"]]
    assert after[talkers["Bob"]][1]["parcel"] == 2 and after[talkers["Bob"]][1]["delivery"] == 2
    assert "parcel" in after[talkers["Bob"]][2]


def test_the_batch_limit_takes_a_backlog_in_over_several_runs(db, talkers, admin, settings):
    small = settings.model_copy(update={"topics_batch": 3})
    first = refresh(db, settings=small, actor=admin, cutoff=CUTOFF)
    second = refresh(db, settings=small, actor=admin, cutoff=CUTOFF + timedelta(hours=1))
    assert first.meta["topics"]["interactions"] == 3 and second.meta["topics"]["interactions"] == 1
    assert "invoice address" in keywords_of(db, talkers["Cy"])


def test_a_failing_topics_step_never_fails_the_refresh(db, talkers, admin, settings, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("topics went wrong")

    monkeypatch.setattr(topics_run.topics, "extract", broken)
    result = refresh(db, settings=settings, actor=admin, cutoff=CUTOFF)
    assert "topics went wrong" in result.meta["topics"]["error"]
    assert keywords_of(db, talkers["Ada"]) == []
    monkeypatch.undo()
    # The next run starts where the failed step would have: nothing is skipped.
    later = refresh(db, settings=settings, actor=admin, cutoff=CUTOFF + timedelta(hours=1))
    assert later.meta["topics"]["interactions"] == 4


def test_erasure_removes_what_a_customer_talks_about(db, talkers, admin, settings):
    refresh(db, settings=settings, actor=admin, cutoff=CUTOFF)
    with db.transaction() as s:
        result = erasure.forget_customer(
            s,
            actor=admin,
            customer_id=talkers["Ada"],
            reason="asked",
            key=erasure.hashing_key(s, None),
        )
    assert result.removed["topics"] == 1
    assert keywords_of(db, talkers["Ada"]) == []
    with db.session() as s:
        df = dict(s.exec(select(TopicTerm.term, TopicTerm.customers)).all())
    assert df["invoice address"] == 1  # Cy's alone now
    assert "invoice" not in df or df["invoice"] == 1
