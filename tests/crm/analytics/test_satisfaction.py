"""Survey ratings as churn features: the columns, the reason in words, the demo's ratings and
the with/without evaluation."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlmodel import func, select

from crm.analytics import churn
from crm.analytics.features import _satisfaction_columns, features_at, read_snapshot
from crm.models import Survey
from tests.crm.analytics.analytics_data import CUTOFF, customer, days, purchase


def test_columns_hold_the_latest_and_mean_rating_before_the_cutoff_and_nan_for_none():
    us = 1_000_000
    surveys = {
        "customer": np.array([0, 0, 2, 2]),
        "answered_at": np.array([10 * us, 20 * us, 5 * us, 99 * us]),
        "rating": np.array([2, 4, 5, 1]),
    }
    cols = _satisfaction_columns(surveys, 50 * us, 3)
    assert cols["satisfaction_latest"][0] == 4 and cols["satisfaction_mean"][0] == 3
    assert math.isnan(cols["satisfaction_latest"][1])  # never rated: missing, not zero
    assert cols["satisfaction_latest"][2] == 5  # the rating after the cutoff is not seen


def test_a_low_last_rating_is_a_reason_in_words():
    assert churn._reason_satisfaction({"satisfaction_latest": 2.0}) == (
        "rated us 2/5 in their last survey"
    )
    assert churn._reason_satisfaction({"satisfaction_latest": 4.0}) is None
    assert churn._reason_satisfaction({"satisfaction_latest": float("nan")}) is None


def test_the_snapshot_reads_answered_ratings_of_its_customers(db):
    rated, unrated = customer(db, "Rated", days(300)), customer(db, "Unrated", days(300))
    for cid in (rated, unrated):
        purchase(db, cid, days(100))
    with db.transaction() as s:
        for rating, when in ((2, days(30)), (5, days(-5))):  # the second after the cutoff
            s.add(
                Survey(
                    customer_id=rated, trigger="support_reply", status="answered",
                    created_at=when - timedelta(hours=1), expires_at=when + timedelta(days=9),
                    answered_at=when, rating=rating,
                )
            )  # fmt: skip
    with db.session() as s:
        frame = features_at(read_snapshot(s, CUTOFF), CUTOFF)
    assert frame.loc[rated, "satisfaction_latest"] == 2
    assert math.isnan(frame.loc[unrated, "satisfaction_latest"])


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_demo_has_ratings_given_before_its_end(db, settings):
    from crm.demo import generate_demo

    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    with db.transaction() as s:
        summary = generate_demo(s, settings=settings, customers=300, seed=3, anchor=anchor.date())
    with db.session() as s:
        count = s.exec(select(func.count()).select_from(Survey)).one()
        ratings = set(s.exec(select(Survey.rating)))
        latest = s.exec(select(func.max(Survey.answered_at))).one()
    assert count == summary.extra["surveys"] > 0
    assert ratings <= {1, 2, 3, 4, 5} and len(ratings) > 2
    assert latest < anchor


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_evaluation_prints_both_models_and_a_verdict(crmbot):
    code, _, err = crmbot("analytics", "evaluate", "--dataset", "cdnow", "--task", "satisfaction")
    assert code == 2 and "needs --dataset demo" in err
    code, out, err = crmbot(
        "analytics", "evaluate", "--dataset", "demo", "--task", "satisfaction",
        "--customers", "3000",
    )  # fmt: skip
    assert code == 0, err
    assert "with ratings" in out and "without ratings" in out
    assert re.search(r"satisfaction helps: (yes|no)\s*$", out)
