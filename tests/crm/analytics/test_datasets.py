from __future__ import annotations

import numpy as np
import pytest

from crm.analytics.datasets import CDNOW_CUTOFF, cdnow_transactions_csv, load_cdnow
from crm.analytics.evaluate import rfm_summary, top_precision
from crm.analytics.features import build_features
from crm.config import Settings
from crm.services import importer
from crm.services.actor import Actor


def test_cdnow_master_file_is_read_by_path():
    frame = load_cdnow()
    assert len(frame) == 69_659 and frame["customer_id"].nunique() == 23_570
    assert frame["date"].min().strftime("%Y-%m-%d") == "1997-01-01"
    assert frame["date"].max().strftime("%Y-%m-%d") == "1998-06-30"


def test_cdnow_goes_through_the_csv_import_into_features(db):
    frame = load_cdnow()
    first = frame[frame["customer_id"].isin(frame["customer_id"].unique()[:50])]
    with db.transaction() as session:
        result = importer.import_transactions(
            session,
            cdnow_transactions_csv(first),
            actor=Actor.system("t"),
            settings=Settings(_env_file=None),
            source="cdnow",
        )
    assert result.created == len(first) and result.customers_created == 50
    with db.session() as session:
        f = build_features(session, CDNOW_CUTOFF)
    calibration = first[first["date"] < "1997-10-01"]
    assert int(f["frequency"].sum()) == len(calibration)
    assert f["purchase_value"].sum() == pytest.approx(calibration["amount"].sum(), abs=0.01)
    repeat_days = calibration.groupby("customer_id")["date"].nunique() - 1
    assert sorted(rfm_summary(f)["frequency"].astype(int)) == sorted(repeat_days.astype(int))


def test_top_precision_takes_the_highest_scores():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1] * 2)
    score = np.arange(20, dtype=float)[::-1]  # first rows score highest
    assert top_precision(y, score, 0.1) == 0.5
    assert top_precision(y, -score, 0.1) == 0.5
    assert top_precision(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.8, 0.2]), 0.5) == 1.0
