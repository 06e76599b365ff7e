"""Association rules over purchases and next-product suggestions.

A "basket" is the set of products (or categories) bought together: one customer's purchase
history in the store (``customers who bought A also buy B``), or one shopping trip when the
data has them. Everything is sparse-matrix algebra (scipy): with ``X`` the baskets x items 0/1
matrix, ``X.T @ X`` holds every pair's co-occurrence count at once, so mining is one product
and scoring every customer is another, with no loop over customers or candidate pairs.

Rules have one antecedent and one consequent (A -> B): support (share of baskets holding both),
confidence (share of A's baskets holding B) and lift (confidence over B's base rate). A
customer's score for a product not bought yet is its base rate times the geometric mean of the
lifts of the rules from what they bought (see ``scores``); the reason names the strongest rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


@dataclass(frozen=True)
class Thresholds:
    min_support: float = 0.01
    min_confidence: float = 0.1
    min_lift: float = 1.2
    # Rules need at least this many baskets holding both sides, whatever the share.
    min_count: int = 5


@dataclass(frozen=True)
class Rule:
    antecedent: str
    consequent: str
    support: float
    confidence: float
    lift: float
    count: int


@dataclass(frozen=True)
class Suggestion:
    item: str
    score: float
    because: str
    confidence: float
    lift: float

    def reason(self, labels: dict[str, str] | None = None) -> str:
        """In words, with items named by ``labels`` (e.g. SKU -> product name) when given."""
        name = (labels or {}).get
        return (
            f"bought {name(self.because, self.because)}; {self.confidence:.0%} of such customers "
            f"buy {name(self.item, self.item)}, {self.lift:.1f}x the usual rate"
        )


def basket_matrix(
    basket_ids: Sequence[object] | NDArray[np.generic],
    items: Sequence[str] | NDArray[np.generic],
) -> tuple[sp.csr_matrix, list[object], list[str]]:
    """The baskets x items 0/1 matrix from parallel (basket, item) arrays; empty baskets vanish."""
    basket_codes, basket_index = _codes(basket_ids)
    item_codes, item_index = _codes(items)
    data = np.ones(len(basket_codes), dtype=np.float64)
    matrix = sp.csr_matrix(
        (data, (basket_codes, item_codes)), shape=(len(basket_index), len(item_index))
    )
    matrix.data[:] = 1.0  # an item twice in a basket still counts once
    return matrix, basket_index, [str(i) for i in item_index]


def _codes(values: Sequence[object] | NDArray[np.generic]) -> tuple[NDArray[np.intp], list[object]]:
    array = np.asarray(values, dtype=object)
    if len(array) == 0:
        return np.zeros(0, dtype=np.intp), []
    uniques, codes = np.unique(array.astype(str), return_inverse=True)
    return codes.astype(np.intp), list(uniques)


@dataclass
class RuleSet:
    """Rules mined from a basket matrix: items x items sparse matrices, one entry a rule."""

    items: list[str]
    baskets: int
    item_share: NDArray[np.float64]  # share of baskets holding each item
    confidence: sp.csr_matrix  # [a, b]: confidence of a -> b, for rules over the thresholds
    lift: sp.csr_matrix
    support: sp.csr_matrix
    count: sp.csr_matrix

    def rules(self, *, min_lift: float = 0.0, limit: int | None = None) -> list[Rule]:
        coo = self.lift.tocoo()
        keep = coo.data >= min_lift
        rows, cols, lifts = coo.row[keep], coo.col[keep], coo.data[keep]
        if len(rows) == 0:
            return []
        conf = np.asarray(self.confidence[rows, cols]).ravel()
        supp = np.asarray(self.support[rows, cols]).ravel()
        cnt = np.asarray(self.count[rows, cols]).ravel()
        order = np.lexsort((-supp, -conf, -lifts))
        if limit is not None:
            order = order[:limit]
        return [
            Rule(
                self.items[rows[i]],
                self.items[cols[i]],
                float(supp[i]),
                float(conf[i]),
                float(lifts[i]),
                int(cnt[i]),
            )
            for i in order
        ]


def mine(matrix: sp.csr_matrix, items: list[str], thresholds: Thresholds) -> RuleSet:
    """Every one-to-one rule over the thresholds, from one sparse product ``X.T @ X``."""
    n = matrix.shape[0]
    if n == 0 or matrix.shape[1] == 0:
        empty = sp.csr_matrix((len(items), len(items)))
        return RuleSet(items, n, np.zeros(len(items)), empty, empty, empty, empty)
    x = matrix.tocsc()
    item_count = np.asarray(x.sum(axis=0)).ravel()
    pairs = (x.T @ x).tocoo()
    off = pairs.row != pairs.col
    a, b, both = pairs.row[off], pairs.col[off], pairs.data[off]
    support = both / n
    confidence = both / item_count[a]
    lift = confidence / (item_count[b] / n)
    keep = (
        (support >= thresholds.min_support)
        & (confidence >= thresholds.min_confidence)
        & (lift >= thresholds.min_lift)
        & (both >= thresholds.min_count)
    )
    a, b = a[keep], b[keep]
    shape = (len(items), len(items))

    def square(values: NDArray[np.float64]) -> sp.csr_matrix:
        return sp.csr_matrix((values[keep], (a, b)), shape=shape)

    return RuleSet(
        items,
        n,
        item_count / n,
        square(confidence),
        square(lift),
        square(support),
        square(both.astype(np.float64)),
    )


def scores(history: sp.csr_matrix, rules: RuleSet) -> sp.csr_matrix:
    """customers x items: an estimated chance of buying each item not bought yet that a rule
    reaches (others are 0): the item's base rate times the geometric mean of the lifts of the
    rules from everything the customer bought (an item bought with no rule to it counts as
    lift 1). The mean keeps a long history from multiplying up many weak, overlapping rules.
    One sparse product."""
    owned = history.copy().tocsr()
    owned.data[:] = 1.0
    log_lift = rules.lift.copy()
    log_lift.data = np.log(log_lift.data)
    reached = owned @ rules.lift.astype(bool).astype(np.float64)  # rules reaching each item
    total = (owned @ log_lift).tocsr()  # sum of log lifts, on the items rules reach
    n_bought = np.maximum(1.0, np.asarray(owned.sum(axis=1)).ravel())
    reached = reached.tocsr()
    reached.data[:] = 1.0
    total = (total + reached * 1e-300).tocsr()  # keep reached items whose lifts cancel to 0
    rows = np.repeat(np.arange(total.shape[0]), np.diff(total.indptr))
    total.data = rules.item_share[total.indices] * np.exp(total.data / n_bought[rows])
    result = (total - owned.multiply(total)).tocsr()
    result.eliminate_zeros()
    return result


def suggest(history: sp.csr_matrix, rules: RuleSet, *, top: int = 3) -> list[list[Suggestion]]:
    """The ``top`` products each customer (a row of ``history``) has not bought, best first,
    each with its strongest rule as the reason. The reasons are found for all picks at once:
    every (pick, bought item) pair is looked up among the rules' sorted keys."""
    score = scores(history, rules)
    owned = history.tocsr()
    n_items = len(rules.items)
    # The picks: per row, the best ``top`` columns (rows are short: candidates are few).
    pick_row: list[int] = []
    pick_item: list[int] = []
    pick_score: list[float] = []
    for row in range(score.shape[0]):
        start, end = score.indptr[row], score.indptr[row + 1]
        if start == end:
            continue
        vals = score.data[start:end]
        best = np.argsort(-vals, kind="stable")[:top]
        pick_row.extend([row] * len(best))
        pick_item.extend(score.indices[start:end][best].tolist())
        pick_score.extend(vals[best].tolist())
    out: list[list[Suggestion]] = [[] for _ in range(score.shape[0])]
    if not pick_row:
        return out
    rows = np.asarray(pick_row, dtype=np.int64)
    picked = np.asarray(pick_item, dtype=np.int64)
    # Every (pick, item the customer bought) pair, flattened.
    counts = np.diff(owned.indptr)[rows]
    which = np.repeat(np.arange(len(rows)), counts)
    firsts = np.repeat(owned.indptr[rows], counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    bought = owned.indices[firsts + offsets].astype(np.int64)
    # Confidence of each bought -> picked rule (0 when there is none).
    conf = rules.confidence.tocoo()
    rule_keys = conf.row.astype(np.int64) * n_items + conf.col
    order = np.argsort(rule_keys)
    rule_keys, rule_conf = rule_keys[order], conf.data[order]
    lift = rules.lift.tocoo()
    rule_lift = lift.data[np.argsort(lift.row.astype(np.int64) * n_items + lift.col)]
    keys = bought * n_items + picked[which]
    at = np.minimum(np.searchsorted(rule_keys, keys), len(rule_keys) - 1)
    hit = rule_keys[at] == keys
    confidence = np.where(hit, rule_conf[at], -1.0)
    # The strongest rule of each pick: sort pairs by (pick, -confidence), take each pick's first.
    ranked = np.lexsort((-confidence, which))
    first = ranked[np.r_[0, np.flatnonzero(np.diff(which[ranked])) + 1]]
    for k, pair in enumerate(first):
        out[int(rows[k])].append(
            Suggestion(
                rules.items[int(picked[k])],
                float(pick_score[k]),
                rules.items[int(bought[pair])],
                float(confidence[pair]),
                float(rule_lift[at[pair]]),
            )
        )
    return out
