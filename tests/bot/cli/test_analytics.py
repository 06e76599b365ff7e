"""`crmbot analytics ...` run in-process."""

from __future__ import annotations

import json
import re

import pytest

from tests.crm.analytics.analytics_data import CUTOFF, customer, days, purchase


@pytest.fixture
def crmbot(crmbot, monkeypatch, tmp_path):
    """The shared in-process runner, with this module's settings."""
    monkeypatch.setenv("CRM_MODEL_DIR", str(tmp_path / "models"))
    return crmbot


def test_refresh_with_cutoff_shows_progress_and_stores_a_backtest(crmbot, db):
    for n, name in enumerate(["Ann", "Bob", "Cy"]):
        cid = customer(db, name, days(300))
        for k in range(n + 1):
            purchase(db, cid, days(10 + 30 * k))
    code, out, err = crmbot(
        "analytics", "refresh", "--cutoff", CUTOFF.strftime("%Y-%m-%d"), "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["customers"] == 3 and data["method"] == "cold_start"
    assert "building features" in err and "storing the run" in err
    code, out, err = crmbot("analytics", "refresh", "--cutoff", "2026-06-01")
    assert code == 0 and "Run #" in out and "cold start" in out and "Segments" in out


def test_refresh_rejects_a_bad_cutoff(crmbot):
    code, _, err = crmbot("analytics", "refresh", "--cutoff", "last tuesday")
    assert code == 2 and "YYYY-MM-DD" in err
    code, _, err = crmbot("analytics", "refresh", "--cutoff", "2999-01-01")
    assert code == 2 and "future" in err


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_evaluate_on_demo_prints_the_table_and_our_auc_last(crmbot):
    code, out, err = crmbot("analytics", "evaluate", "--dataset", "demo", "--customers", "800")
    assert code == 0, err
    assert "message:" not in out  # lifetimes' optimiser report stays out of the table
    for method in (
        "crmbot",
        "BG/NBD",
        "Pareto/NBD",
        "RFM",
        "recency",
    ):  # the table may wrap long names
        assert method in out
    assert "Segment stability" in out
    last = out.strip().splitlines()[-1]
    auc, precision = re.fullmatch(
        r"our AUC: ([0-9.]+), our average precision: ([0-9.]+)", last
    ).groups()
    assert 0.5 < float(auc) <= 1 and 0 < float(precision) <= 1
    assert "average precision" in out  # a column of the table for every method
    ceiling = next(line for line in out.splitlines() if line.startswith("Ceiling, not a method"))
    assert "holdout's own labels" in ceiling


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_value_evaluation_needs_cdnow(crmbot):
    code, out, err = crmbot("analytics", "evaluate", "--dataset", "demo", "--task", "value")
    assert code == 2 and "cdnow" in err


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_value_evaluation_on_cdnow_prints_three_methods_and_our_figures_last(crmbot):
    code, out, err = crmbot("analytics", "evaluate", "--dataset", "cdnow", "--task", "value")
    assert code == 0, err
    assert "23,570 customers" in out
    for method in ("crmbot", "BG/NBD", "naive"):
        assert method in out
    lines = out.strip().splitlines()
    assert re.search(r"within 5%: (yes|no)", " ".join(lines[-5:]))
    flat = " ".join(out.split())  # the console wraps long lines
    assert re.search(r"ours has the lower MAE at every equal total: (yes|no)", flat)
    scaled = re.findall(
        r"scaled to .*?MAE ours ([0-9]+\.[0-9]+), BG/NBD x Gamma-Gamma ([0-9]+\.[0-9]+)", flat
    )
    assert len(scaled) == 3 and all(float(a) > 0 and float(b) > 0 for a, b in scaled)
    assert re.search(r"predicting no spend for anyone, MAE [0-9.]+", flat)
    spearman, share = re.fullmatch(
        r"our Spearman: ([0-9.]+), our top-10% share: ([0-9.]+)", lines[-1]
    ).groups()
    assert 0 < float(spearman) < 1 and 0.1 < float(share) < 1


def test_refresh_then_list_by_value_and_show_the_value_on_the_card(crmbot, db):
    frequent = customer(db, "Frequent Fay", days(300))
    for k in range(8):
        purchase(db, frequent, days(5 + 30 * k))
    lapsed = customer(db, "Lapsed Len", days(300))
    purchase(db, lapsed, days(250))
    code, _, err = crmbot("analytics", "refresh")  # now: a backtest's cutoff is not shown
    assert code == 0, err
    code, out, err = crmbot("customer", "list", "--sort", "value", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["Frequent Fay", "Lapsed Len"]
    assert rows[0]["expected_spend"] > rows[1]["expected_spend"] >= 0
    assert rows[0]["horizon_months"] == 12 and 0 < rows[1]["p_alive"] <= 1
    code, out, err = crmbot("customer", "show", str(frequent))
    assert code == 0 and "expected 12-month value:" in out and "still active:" in out, err
    code, _, err = crmbot("customer", "list", "--sort", "name")
    assert code == 2 and "not a sort order" in err
