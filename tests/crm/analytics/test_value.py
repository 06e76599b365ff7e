"""The customer value model: BG/NBD recovers what generated the purchases; spend follows buyers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm.analytics import value
from crm.analytics.evaluate_value import score
from crm.config import Settings
from tests.crm.analytics.analytics_data import CUTOFF, customer, days, purchase


@pytest.fixture
def settings(db, tmp_path):
    return Settings(_env_file=None, database_url=db.url, model_dir=str(tmp_path / "models"))  # type: ignore[call-arg]


START = pd.Timestamp("2024-01-01")


def _simulate(n: int, seed: int, r=0.25, alpha=4.0, a=0.8, b=2.5, weeks=78.0):
    """Purchases drawn from the BG/NBD story: Poisson buying until a geometric drop-out."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    spend = rng.gamma(3.0, 10.0, n)  # each customer's typical order value
    joined = rng.uniform(0, 12, n)
    rows = []
    for i in range(n):  # test data only; the model itself never loops over customers
        t = joined[i]
        rows.append((i, t, spend[i]))
        while True:
            t += rng.exponential(1.0 / max(lam[i], 1e-9))
            if t >= weeks:
                break
            rows.append((i, t, spend[i] * rng.uniform(0.8, 1.2)))
            if rng.uniform() < p[i]:
                break
    frame = pd.DataFrame(rows, columns=["customer_id", "week", "amount"])
    frame["date"] = START + pd.to_timedelta(frame["week"] * 7, unit="D")
    frame["customer_id"] = frame["customer_id"].astype(str)
    return frame[["customer_id", "date", "amount"]]


def test_bgnbd_fit_recovers_the_parameters_that_generated_the_purchases():
    frame = _simulate(4000, seed=1)
    calibration = value.rfm(frame, START + pd.Timedelta(weeks=39))
    model = value.fit_bgnbd(calibration["x"], calibration["t_x"], calibration["T"])
    assert model.r == pytest.approx(0.25, rel=0.35)
    assert model.a / (model.a + model.b) == pytest.approx(0.8 / 3.3, rel=0.35)


def test_p_alive_and_purchases_follow_recency_and_frequency():
    model = value.BGNBD(r=0.25, alpha=4.0, a=0.8, b=2.5)
    x = np.array([0.0, 5.0, 5.0])
    t_x = np.array([0.0, 30.0, 5.0])  # recent buyer, then one silent for 25 weeks
    T = np.array([30.0, 30.0, 30.0])
    alive = model.p_alive(x, t_x, T)
    assert alive[0] == 1.0  # BG/NBD: nobody drops out before a repeat purchase
    assert alive[1] > alive[2]
    purchases = model.expected_purchases(52.0, x, t_x, T)
    assert purchases[1] > purchases[2] and purchases[1] > purchases[0]
    assert np.all(model.expected_purchases(104.0, x, t_x, T) > purchases)


def test_predicted_spend_ranks_future_spenders_and_keeps_the_total_near_the_truth():
    frame = _simulate(3000, seed=2)
    cutoff = START + pd.Timedelta(weeks=39)
    end = cutoff + pd.Timedelta(weeks=39)
    prediction = value.predict_value(frame, cutoff, 39.0)
    assert prediction.method == "bgnbd+gbm"
    calibration = value.rfm(frame, cutoff)
    holdout = frame[(frame["date"] >= cutoff) & (frame["date"] < end)]
    actual = holdout.groupby("customer_id")["amount"].sum().reindex(calibration.index).fillna(0)
    ours = score("ours", prediction.frame["spend"].reindex(calibration.index), actual, 0.0)
    naive = score("naive", calibration["spend"] / calibration["T"] * 39, actual, 0.0)
    assert ours.spearman > naive.spearman
    assert ours.mae < naive.mae
    assert abs(ours.total_error) < 25
    frame_ = prediction.frame
    assert ((frame_["p_alive"] > 0) & (frame_["p_alive"] <= 1)).all()
    assert (frame_["spend"] >= 0).all() and (frame_["purchases"] >= 0).all()


def test_too_little_history_falls_back_to_purchases_times_order_value():
    frame = _simulate(60, seed=3)
    prediction = value.predict_value(frame, START + pd.Timedelta(weeks=39), 52.0)
    assert prediction.method == "bgnbd"
    calibration = value.rfm(frame, START + pd.Timedelta(weeks=39))
    expected = prediction.frame["purchases"] * calibration["avg_amount"]
    assert np.allclose(prediction.frame["spend"], expected.reindex(prediction.frame.index))


def test_no_purchases_gives_an_empty_prediction():
    empty = pd.DataFrame({"customer_id": [], "date": pd.to_datetime([]), "amount": []})
    assert value.predict_value(empty, START, 52.0).frame.empty


def test_value_at_stake_is_what_the_customer_would_spend_were_they_to_stay():
    import pandas as pd

    from crm.analytics.value_run import value_at_stake

    features = pd.DataFrame(
        {"value_365": [100.0, 1000.0, 50.0], "open_deal_value": [0.0, 0.0, 20.0]}, index=[1, 2, 3]
    )
    values = pd.DataFrame({"spend": [500.0, 100.0], "p_alive": [0.5, 0.01]}, index=[1, 2])
    stake, from_model = value_at_stake(features, values)
    # 1: 500 expected at a 50% chance of staying; 2: P(alive) floored at 10%; 3: no prediction,
    # so last year's purchases, plus its open deal.
    assert stake.to_dict() == {1: 1000.0, 2: 1000.0, 3: 70.0} and from_model == 2
    # A small past buyer the model expects much from outranks a big past buyer it expects little of.
    assert stake[1] > features["value_365"][1] and stake[2] == stake[1]
    empty, none = value_at_stake(features, values.iloc[:0])
    assert empty.to_dict() == {1: 100.0, 2: 1000.0, 3: 70.0} and none == 0


def test_the_refresh_stores_the_models_stake_on_each_churn_score(db, admin, settings):
    from sqlmodel import select

    from crm.analytics.refresh import refresh
    from crm.models import ChurnScore, CustomerValue

    ids = [customer(db, f"Buyer {n}", days(400)) for n in range(6)]
    for n, cid in enumerate(ids):
        for k in range(2 + n):
            purchase(db, cid, days(300 - 40 * k), str(20 + 10 * n))
    result = refresh(db, settings=settings, actor=admin, cutoff=CUTOFF)
    assert result.meta["value"]["stake_from_model"] > 0
    with db.session() as s:
        values = {
            v.customer_id: v
            for v in s.exec(select(CustomerValue).where(CustomerValue.run_id == result.run_id))
        }
        scores = {
            c.customer_id: c
            for c in s.exec(select(ChurnScore).where(ChurnScore.run_id == result.run_id))
        }
    checked = 0
    for cid, churn in scores.items():
        if cid in values:
            v = values[cid]
            assert churn.value_at_stake == pytest.approx(
                v.expected_spend / max(v.p_alive, 0.1), rel=1e-3, abs=0.02
            )
            checked += 1
    assert checked > 0
