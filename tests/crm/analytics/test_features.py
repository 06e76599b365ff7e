from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from crm.analytics.features import (
    MODEL_FEATURES,
    build_features,
    engagement_after,
    model_matrix,
    weekly_purchases,
)
from crm.models import Channel, DealStatus, Direction
from tests.crm.analytics.analytics_data import (
    CUTOFF,
    customer,
    days,
    deal,
    follow_up,
    interaction,
    purchase,
)


@pytest.fixture
def data(db):
    one = customer(db, "One", datetime(2025, 1, 1, tzinfo=UTC))
    purchase(db, one, days(10), "100.50")
    purchase(db, one, days(40), "50.25")
    purchase(db, one, days(200), "20")
    purchase(db, one, days(-1), "999")  # after the cutoff: invisible
    interaction(db, one, days(5), Channel.purchase, Direction.inbound, "77", deleted=True)
    interaction(db, one, days(25), Channel.email, Direction.inbound)
    interaction(db, one, days(20), Channel.email, Direction.outbound)
    interaction(db, one, days(3), Channel.email, Direction.inbound)
    interaction(db, one, days(2), Channel.email, Direction.inbound)
    interaction(db, one, days(100), Channel.call, Direction.outbound)
    interaction(db, one, days(400), Channel.note, Direction.internal)
    deal(db, one, days(60), DealStatus.won, "1000", closed=days(30))
    deal(db, one, days(60), DealStatus.won, "500", closed=days(-5))  # still open at the cutoff
    deal(db, one, days(60), DealStatus.lost, "300", closed=days(10))
    deal(db, one, days(-2), DealStatus.open, "700")  # opened after the cutoff
    follow_up(db, one, due=days(2), created=days(10))
    follow_up(db, one, due=days(3), created=days(10), done_at=days(1))
    follow_up(db, one, due=days(1), created=days(10), done_at=days(-1))  # done after the cutoff
    follow_up(db, one, due=days(-3), created=days(10))
    two = customer(db, "Two", days(5))
    customer(db, "Later", days(-1))
    return one, two


def test_features_of_hand_built_customer_are_exact(db, data):
    one, two = data
    with db.session() as session:
        f = build_features(session, CUTOFF)
    assert list(f.index) == [one, two]
    r = f.loc[one]
    expected = {
        "frequency": 3,
        "purchase_days": 3,
        "purchase_value": 170.75,
        "recency_days": 10,
        "first_purchase_days": 200,
        "avg_purchase_gap_days": 95,
        "purchases_30": 1,
        "purchases_90": 2,
        "purchases_365": 3,
        "purchases_prev_90": 0,
        "value_90": 150.75,
        "value_365": 170.75,
        "interactions": 9,
        "interactions_365": 8,
        "email_30": 4,
        "call_90": 0,
        "call_365": 1,
        "note_365": 0,
        "inbound_30": 4,
        "outbound_30": 1,
        "outbound_365": 2,
        "days_since_inbound": 2,
        "days_since_outbound": 20,
        "days_since_engagement": 2,
        "unanswered_inbound": 2,
        "unanswered_days": 3,
        "won_deals": 1,
        "won_value": 1000,
        "open_deals": 1,
        "open_deal_value": 500,
        "lost_deals": 1,
        "lost_deals_90": 1,
        "monetary": 1170.75,
        "overdue_follow_ups": 2,
        "tenure_days": 516,
    }
    for name, value in expected.items():
        assert r[name] == pytest.approx(value, abs=1e-6), name
    assert bool(r["engaged"]) and bool(r["active"])
    empty = f.loc[two]
    assert empty["frequency"] == 0 and empty["monetary"] == 0
    assert math.isnan(empty["recency_days"]) and not bool(empty["engaged"])
    assert empty["tenure_days"] == pytest.approx(5)
    assert model_matrix(f).shape == (2, len(MODEL_FEATURES))


def test_the_cutoff_is_a_parameter(db, data):
    one, _ = data
    with db.session() as session:
        earlier = build_features(session, days(30))
    r = earlier.loc[one]
    assert r["frequency"] == 2 and r["recency_days"] == pytest.approx(10)
    assert r["won_deals"] == 0 and r["open_deals"] == 3  # closed at or after that cutoff: open then
    assert r["overdue_follow_ups"] == 0


def test_engagement_after_is_the_label_window(db, data):
    one, two = data
    with db.session() as session:
        assert list(engagement_after(session, CUTOFF, days(-30))) == [one]
        assert (
            list(engagement_after(session, days(1), CUTOFF)) == []
        )  # the deleted purchase does not count
        assert list(engagement_after(session, days(3), CUTOFF)) == [one]


def test_every_nth_customer_is_a_sample_with_the_same_numbers(db, data):
    one, two = data
    with db.session() as session:
        full = build_features(session, CUTOFF)
        sample = build_features(session, CUTOFF, every=2)
    kept = [cid for cid in (one, two) if cid % 2 == 0]
    assert list(sample.index) == kept
    for cid in kept:
        assert sample.loc[cid].equals(full.loc[cid])


def test_the_purchase_record_is_counted_week_by_week_before_the_cutoff(db):
    ann = customer(db, "Ann", days(800))
    bob = customer(db, "Bob", days(800))
    purchase(db, ann, days(1), "5")  # week 0
    purchase(db, ann, days(3), "7")  # week 0 again
    purchase(db, ann, days(15), "20")  # week 2
    purchase(db, ann, days(400), "100")  # older than the span: the totals column
    purchase(db, ann, days(-2), "999")  # after the cutoff: never read
    interaction(db, ann, days(8), Channel.email, Direction.inbound)  # not a purchase
    interaction(db, bob, days(9), Channel.purchase, Direction.inbound, "50", deleted=True)
    with db.session() as session:
        out = weekly_purchases(session, CUTOFF, pd.Index([bob, ann]), weeks=4)
    counts, spend = out[:, :5], out[:, 5:]
    assert out.shape == (2, 10)
    assert counts[1].tolist() == [2, 0, 1, 0, 1] and spend[1].tolist() == [12, 0, 20, 0, 100]
    assert not np.any(out[0])  # Bob's only purchase was deleted
