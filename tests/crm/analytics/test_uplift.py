"""Uplift measures and learners, and the Hillstrom e-mail test read as a campaign."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from crm.analytics import uplift
from crm.analytics.datasets import hillstrom_path, load_hillstrom
from crm.services.campaigns import ArmTotals, uplift_of
from crm.services.errors import CRMError


def _synthetic(n: int = 8000, seed: int = 1):
    """Half treated; the treatment raises the response only where x0 > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    t = rng.integers(0, 2, n)
    p = 0.1 + 0.25 * t * (x[:, 0] > 0)
    y = (rng.random(n) < p).astype(int)
    return x, t, y


def test_qini_ranks_the_true_uplift_above_random_and_the_reverse_below():
    x, t, y = _synthetic()
    truth = (x[:, 0] > 0).astype(float)
    rng = np.random.default_rng(0)
    good = uplift.qini_coefficient(truth + rng.random(len(y)) * 1e-3, t, y)
    noise = uplift.qini_coefficient(rng.random(len(y)), t, y)
    worst = uplift.qini_coefficient(-truth, t, y)
    # Perfect ranking here gains 0.0156 over random (half the customers gain 0.25 when treated).
    assert good > 0.012 and abs(noise) < 0.004 and worst < -0.012
    assert uplift.top_uplift(truth, t, y, 0.3) > 0.2 > uplift.top_uplift(-truth, t, y, 0.3)


@pytest.mark.parametrize("name", sorted(uplift.CANDIDATES))
def test_every_candidate_learns_where_the_treatment_works(name):
    x, t, y = _synthetic()
    model = uplift.CANDIDATES[name]().fit(x, t, y)
    xt, tt, yt = _synthetic(seed=2)
    assert uplift.qini_coefficient(model.uplift(xt), tt, yt) > 0.008


def test_the_uplift_sentence_follows_the_interval():
    worked = uplift_of(ArmTotals("t", 5000, 5000, 900, 0), ArmTotals("c", 5000, 0, 700, 0))
    assert (
        worked.verdict == "worked" and worked.low > 0 and worked.low < worked.points < worked.high
    )
    assert (
        worked.sentence.startswith("+4.0 points, 95% CI")
        and "the campaign worked" in worked.sentence
    )
    unclear = uplift_of(ArmTotals("t", 200, 200, 21, 0), ArmTotals("c", 200, 0, 20, 0))
    assert unclear.verdict == "unclear" and unclear.low < 0 < unclear.high
    harmed = uplift_of(ArmTotals("t", 5000, 5000, 500, 0), ArmTotals("c", 5000, 0, 700, 0))
    assert harmed.verdict == "harmed" and "did harm" in harmed.sentence


def test_the_hillstrom_report_reproduces_the_published_arm_means():
    frame = load_hillstrom()
    assert len(frame) == 64_000
    published = {  # Hillstrom's MineThatData challenge (2008): visit, conversion, spend
        "Mens E-Mail": (18.28, 1.25, 1.42),
        "Womens E-Mail": (15.14, 0.88, 1.08),
        "No E-Mail": (10.62, 0.57, 0.65),
    }
    visit, visit_up = uplift.hillstrom_report(frame, "visit")
    conversion, _ = uplift.hillstrom_report(frame, "conversion")
    for v, c in zip(visit, conversion, strict=True):
        rates = (
            round(v.response_rate * 100, 2),
            round(c.response_rate * 100, 2),
            round(v.revenue_per_customer, 2),
        )
        assert rates == published[v.arm]
    assert [u.arm for u in visit_up] == ["Mens E-Mail", "Womens E-Mail"]
    assert all(u.verdict == "worked" and u.low < u.points < u.high for u in visit_up)


def test_a_changed_data_file_is_refused(tmp_path):
    bad = tmp_path / "hillstrom.csv.zip"
    with zipfile.ZipFile(hillstrom_path()) as src, zipfile.ZipFile(bad, "w") as dst:
        dst.writestr("hillstrom.csv", src.read("hillstrom.csv").replace(b"Rural", b"Urban", 1))
    with pytest.raises(CRMError, match="not the published Hillstrom data"):
        load_hillstrom(bad)
    missing = tmp_path / "none.zip"
    with pytest.raises(CRMError, match="Cannot read"):
        load_hillstrom(missing)
    shutil.copy(hillstrom_path(), tmp_path / "ok.zip")
    assert isinstance(load_hillstrom(tmp_path / "ok.zip"), pd.DataFrame)


def test_evaluate_hillstrom_on_the_command_line(crmbot):
    import json

    code, out, err = crmbot("analytics", "evaluate", "--dataset", "hillstrom", "--json")
    assert code == 0, err
    data = json.loads(out)
    # Loaded as a campaign and read by `campaign report`: the published conversion and spend.
    got = {
        a["arm"]: (round(a["response_rate"] * 100, 2), round(a["revenue_per_customer"], 2))
        for a in data["campaign"]["arms"]
    }
    assert got == {
        "Mens E-Mail": (1.25, 1.42),
        "Womens E-Mail": (0.88, 1.08),
        "control": (0.57, 0.65),
    }
    assert [u["verdict"] for u in data["campaign"]["uplifts"]] == ["worked", "worked"]
    assert {r["method"] for r in data["targeting"]} >= {"random targeting", "response model"}
    code, out, err = crmbot("analytics", "evaluate", "--dataset", "hillstrom")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("our Qini for visit: ")
    assert "every baseline on Qini" in lines[-2] + lines[-3]
    for method in ("crmbot uplift", "random", "response model", "scikit-learn"):
        assert method in out
