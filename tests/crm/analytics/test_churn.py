from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from crm.analytics import churn
from crm.analytics.features import build_features
from crm.config import Settings
from crm.demo import generate_demo
from crm.models import Channel, Direction
from crm.services import bulk
from crm.services.actor import Actor
from tests.crm.analytics.analytics_data import CUTOFF, customer, days, interaction, purchase

CONFIG = churn.ChurnConfig(
    horizon_days=60, training_cutoffs=3, cutoff_step_days=30, min_labelled=100
)


@pytest.fixture
def demo_db(db):
    with db.transaction() as session:
        generate_demo(
            session,
            settings=Settings(_env_file=None),
            customers=500,
            seed=3,
            anchor=date(2026, 1, 1),
        )
    return db


def _future_rows(db, cutoff: datetime) -> None:
    """Everyone buys and writes right after the cutoff: a leaky model would learn from it."""
    with db.session() as session:
        ids = [r[0] for r in session.connection().exec_driver_sql("SELECT id FROM customers")]
    rows = []
    for n, cid in enumerate(ids):
        for k, (channel, direction, amount) in enumerate(
            [("purchase", "inbound", 5000), ("email", "inbound", None), ("email", "outbound", None)]
        ):
            rows.append(
                {
                    "customer_id": cid,
                    "channel": channel,
                    "direction": direction,
                    "occurred_at": cutoff + timedelta(hours=1 + n % 48, minutes=k),
                    "amount": amount,
                    "source": "future",
                    "external_id": f"f{cid}-{k}",
                    "body": "",
                    "subject": None,
                }
            )
    with db.transaction() as session:
        bulk.insert_interactions(session, rows, actor=Actor.system("test"), label="future")


def test_training_and_scores_ignore_everything_after_the_cutoff(demo_db):
    cutoff = datetime(2025, 11, 1, tzinfo=UTC)
    with demo_db.session() as session:
        model, meta = churn.train(session, cutoff, CONFIG)
        before = churn.score(build_features(session, cutoff), model, CONFIG).frame
    assert model is not None and meta["model"] in meta["candidates_auc"]
    assert set(meta["candidates_auc"]) == {"logistic_regression", "hist_gradient_boosting", "blend"}
    assert meta["validation_auc"] == max(meta["candidates_auc"].values())
    assert 0.5 < meta["validation_auc"] <= 1.0
    # The linear model learns from every labelled cutoff, the newest (validation) one
    # included; the trees are fitted once, on the older cutoffs.
    assert meta["training_rows"] == meta["labelled_rows"]
    assert meta["tree_training_rows"] == meta["labelled_rows"] - meta["calibration_rows"]
    # Every label window closes by the scoring cutoff.
    assert all(
        datetime.fromisoformat(c) + timedelta(days=CONFIG.horizon_days) <= cutoff
        for c in meta["label_cutoffs"]
    )
    _future_rows(demo_db, cutoff)
    with demo_db.session() as session:
        model2, meta2 = churn.train(session, cutoff, CONFIG)
        after = churn.score(build_features(session, cutoff), model2, CONFIG).frame
    assert meta2["candidates_auc"] == meta["candidates_auc"]
    assert (
        meta2["labelled_rows"] == meta["labelled_rows"]
        and meta2["churn_rate"] == meta["churn_rate"]
    )
    np.testing.assert_allclose(after["probability"].to_numpy(), before["probability"].to_numpy())
    assert after["reasons"].tolist() == before["reasons"].tolist()
    # The same future rows do change a later cutoff's scores (the test can fail).
    later = cutoff + timedelta(days=3)
    with demo_db.session() as session:
        moved = churn.score(build_features(session, later), model2, CONFIG).frame
    assert not np.allclose(
        moved["probability"].to_numpy(),
        before.reindex(moved.index)["probability"].fillna(0).to_numpy(),
    )


def test_model_round_trips_through_its_file(demo_db, tmp_path):
    cutoff = datetime(2025, 11, 1, tzinfo=UTC)
    with demo_db.session() as session:
        model, _ = churn.train(session, cutoff, CONFIG)
        features = build_features(session, cutoff)
    path = churn.save_model(model, tmp_path / "models", cutoff)
    loaded = churn.load_model(path)
    engaged = features[features["engaged"]]
    np.testing.assert_allclose(loaded.predict(engaged), model.predict(engaged))
    assert loaded.meta["features"] == model.meta["features"]


def test_high_risk_customers_get_reasons_in_words(demo_db):
    cutoff = datetime(2025, 11, 1, tzinfo=UTC)
    with demo_db.session() as session:
        model, _ = churn.train(session, cutoff, CONFIG)
        scores = churn.score(build_features(session, cutoff), model, CONFIG).frame
    flagged = scores[scores["risk_level"] != "low"]
    assert len(flagged) > 0
    with_reasons = flagged[flagged["reasons"].map(len) > 0]
    assert len(with_reasons) >= 0.8 * len(flagged)
    words = " ".join(r for rs in with_reasons["reasons"] for r in rs)
    assert "days" in words
    assert scores.loc[scores["risk_level"] == "low", "reasons"].map(len).eq(0).all()


def test_leads_who_never_bought_are_not_scored_and_reasons_follow_the_customer(demo_db):
    cutoff = datetime(2025, 11, 1, tzinfo=UTC)
    with demo_db.session() as session:
        model, _ = churn.train(session, cutoff, CONFIG)
        features = build_features(session, cutoff)
    scores = churn.score(features, model, CONFIG).frame
    leads = features.index[~features["buyer"]]
    assert len(leads) > 0 and not scores.index.intersection(leads).size
    assert features.loc[scores.index, "buyer"].all()
    flagged = scores[scores["reasons"].map(len) > 0]
    words = [r for rs in flagged["reasons"] for r in rs]
    assert "has never bought" not in words
    # Reasons carry each customer's own numbers: different customers, different reasons.
    assert len({tuple(rs) for rs in flagged["reasons"]}) >= 0.5 * len(flagged)
    # A reason is shown only for a group that pushes this customer's log-odds up.
    pushes = churn.group_pushes(model.explainer, churn.model_matrix(features.loc[flagged.index]))
    assert (pushes.max(axis=1) > 0).all()


def test_cold_start_uses_the_transparent_score_and_says_so(db):
    quiet = customer(db, "Quiet", days(400))
    purchase(db, quiet, days(200))
    purchase(db, quiet, days(180))  # usual gap: 20 days
    busy = customer(db, "Busy", days(400))
    interaction(db, busy, days(1), Channel.email, Direction.inbound)
    with db.session() as session:
        model, meta = churn.train(session, CUTOFF, CONFIG)
        result = churn.score(build_features(session, CUTOFF), model, CONFIG, meta=meta)
    assert model is None and meta["cold_start_reason"]
    assert result.method == "cold_start"
    s = result.frame
    assert s.loc[quiet, "probability"] == pytest.approx(1 - math.exp(-180 / 20))
    assert s.loc[quiet, "risk_level"] == "high"
    assert "no purchase in 180 days (usually every 20)" in s.loc[quiet, "reasons"]
    assert any("cold start" in r for r in s.loc[quiet, "reasons"])
    # Wrote yesterday but never bought: a lead, not a customer who can churn.
    assert busy not in s.index
    assert set(s["method"]) == {"cold_start"}


def test_platt_scaling_is_learnt_out_of_time_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 1))
    y = (rng.random(4000) < 1 / (1 + np.exp(-2 * x[:, 0]))).astype(int)

    class Overconfident:
        def predict_proba(self, x):
            p = 1 / (1 + np.exp(-6 * x[:, 0]))
            return np.column_stack([1 - p, p])

    raw = Overconfident().predict_proba(x)[:, 1]
    slope, intercept = churn.PlattCalibrated.sigmoid_for(raw, y)
    assert slope == pytest.approx(1 / 3, abs=0.05) and abs(intercept) < 0.1
    calibrated = churn.PlattCalibrated(Overconfident(), slope, intercept).predict_proba(x)[:, 1]
    assert np.all(np.diff(calibrated[np.argsort(raw, kind="stable")]) >= 0)
    assert calibrated.mean() == pytest.approx(y.mean(), abs=0.02)


def test_blend_averages_its_members():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3))
    y = (x[:, 0] + rng.normal(size=600) > 0).astype(int)
    members = list(churn.candidates(7).values())
    blend = churn.Blend(members).fit(x, y)
    single = [m.fit(x, y).predict_proba(x) for m in churn.candidates(7).values()]
    np.testing.assert_allclose(blend.predict_proba(x), np.mean(single, axis=0))


def test_reason_texts_read_only_the_reason_columns():
    # Reasons are worded from rows holding REASON_COLUMNS only: a reason reading another
    # column would fail here rather than on a customer's card.
    row = {c: 1.0 for c in churn.REASON_COLUMNS}
    row |= {"recency_days": 200.0, "avg_purchase_gap_days": 30.0, "tenure_days": 30.0}
    row |= {"purchases_prev_90": 4.0, "unanswered_inbound": 2.0, "lost_deals_90": 1.0}
    texts = [fn(row) for _, fn in churn.REASON_GROUPS.values()]
    texts += churn.rule_reasons(row, max_reasons=10)
    assert "no purchase in 200 days (usually every 30)" in texts
    assert "orders down 75% vs the previous quarter" in texts
    assert "no reply to 2 emails in 1 day" in texts
    assert "new customer (30 days)" in texts


def test_the_median_imputer_does_what_the_simple_imputer_did():
    import numpy as np
    from sklearn.impute import SimpleImputer

    from crm.analytics.churn import MedianImputer

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 6))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 2] = np.nan  # no value at all
    x[:, 4] = rng.normal(size=400)  # never missing: no indicator column
    later = rng.normal(size=(50, 6))
    later[rng.random(later.shape) < 0.3] = np.nan
    simple = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    ours = MedianImputer().fit(x)
    assert np.allclose(ours.transform(later), simple.fit(x).transform(later))
    assert ours.indicator_features_.tolist() == simple.indicator_.features_.tolist()


def test_reasons_say_little_contact_and_a_won_deal_as_the_only_purchase_in_words():
    from crm.services.insights import read_reason

    base = {"interactions_prev_90": 0.0, "lost_deals_90": 0.0}
    few = churn._reason_activity({**base, "interactions_90": 1.0})
    none = churn._reason_activity({**base, "interactions_90": 0.0})
    assert (few, none) == ("only 1 interaction in 90 days", "no interactions in 90 days")
    assert churn._reason_activity({**base, "interactions_90": 9.0}) is None
    won = churn._reason_deals({**base, "purchase_days": 0.0, "won_deals": 2.0})
    assert won == "no purchase besides 2 won deals"
    assert churn._reason_deals({**base, "purchase_days": 3.0, "won_deals": 2.0}) is None
    # The digest reads them back into kinds it has an action for.
    assert read_reason(few).kind == "activity_low" and read_reason(few).numbers == (1,)
    assert read_reason(none).numbers == (0,)
    assert read_reason(won).kind == "won_deal_only"
