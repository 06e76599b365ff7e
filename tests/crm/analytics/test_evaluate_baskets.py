from __future__ import annotations

import pandas as pd
import pytest

from crm.analytics.baskets import Thresholds
from crm.analytics.evaluate_baskets import OURS, evaluate_completejourney

pytest.importorskip("mlxtend")


def _planted() -> pd.DataFrame:
    """Pasta households next buy sauce and tea households honey, which only the co-purchases
    of other households (pasta with sauce, tea with honey) point to; 15 filler categories are
    each in more baskets than either."""
    rows = []
    basket = 0

    def add(household: int, items: list[str]) -> None:
        nonlocal basket
        basket += 1
        rows.extend(
            (household, basket, pd.Timestamp(2026, 1, 1) + pd.Timedelta(hours=basket), c)
            for c in items
        )

    fillers = [f"filler{i}" for i in range(15)]
    for h in range(60):
        staple = "pasta" if h < 30 else "tea"
        add(h, [staple])
        add(h, [staple, "milk"])
        add(h, ["sauce" if staple == "pasta" else "honey"])  # the held-out last basket
    for h in range(60, 200):
        add(h, ["pasta", "sauce"] if h % 2 else ["tea", "honey"])
        ten = [f for i, f in enumerate(fillers) if i // 5 != h % 3]
        add(h, ten)
        add(h, ten[:5])
    return pd.DataFrame(rows, columns=["household", "basket", "at", "category"])


def test_rules_find_the_planted_next_category_that_popularity_misses():
    result = evaluate_completejourney(
        thresholds=Thresholds(min_support=0.01, min_confidence=0.1, min_lift=1.2, min_count=5),
        lines=_planted(),
    )
    rows = {r.method: r for r in result.rows}
    assert result.evaluated == 60  # the others' last baskets hold nothing new to them
    assert rows[OURS].hit[5] == 1.0 and rows[OURS].recall[5] == 1.0
    assert rows["popularity"].hit[5] == 0.0
    assert rows["mlxtend apriori rules"].hit[5] == 1.0
    assert result.beats_all
