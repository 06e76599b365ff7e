"""crm.analytics.evaluate: the ceiling beside the evaluation table."""

from __future__ import annotations


def test_the_ceiling_is_fitted_on_the_holdout_labels_and_finds_what_they_depend_on():
    import numpy as np
    import pandas as pd

    from crm.analytics import churn
    from crm.analytics.evaluate import ceiling

    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame(
        rng.normal(size=(n, len(churn.MODEL_FEATURES))), columns=churn.MODEL_FEATURES
    )
    y = (frame[churn.MODEL_FEATURES[0]] > 0).astype(int).to_numpy()
    top = ceiling(churn.model_matrix(frame), y, seed=7)
    assert top.auc > 0.95 and top.note == "fitted on the holdout itself"
    noise = ceiling(churn.model_matrix(frame), rng.integers(0, 2, n), seed=7)
    assert noise.auc < 0.65


def test_paired_gap_tells_a_real_difference_from_chance():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from crm.analytics.evaluate import paired_gap

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2_000)
    good = y + rng.normal(0, 1, len(y))  # informative
    noise = rng.normal(0, 1, len(y))  # not at all
    diff, low, high = paired_gap(y, good, noise, roc_auc_score)
    assert diff > 0.2 and 0 < low <= diff <= high
    same = paired_gap(y, good, good, roc_auc_score)
    assert same == (0.0, 0.0, 0.0)
