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

Rules with two antecedents (A and B -> C) are mined too, over the most frequent pairs (at most
``Thresholds.max_pairs``), and kept only where they say more than their one-item rules: their
confidence beats the better of A -> C and B -> C by ``min_improvement`` (else "bought A and B"
is just "bought A" said twice). They name the reason when they are the strongest rule a
customer has ("bought A and B; 38% of such customers buy C, 4.2x the usual rate") and are
listed by ``crmbot analytics rules``, but do not enter the score: added as more terms of its
mean they lowered hit rate@5 on The Complete Journey (0.2671 to 0.2618). Counting a pair's
baskets is one more sparse product per chunk of pairs: the pair-indicator columns (A's column
times B's) against the basket matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
    # Two-item antecedents: the most frequent pairs looked at, and how much a pair's confidence
    # must beat the better of its one-item rules (relative) to be kept.
    max_pairs: int = 2000
    min_improvement: float = 0.1


@dataclass(frozen=True)
class Rule:
    antecedent: str
    consequent: str
    support: float
    confidence: float
    lift: float
    count: int
    antecedent2: str | None = None  # the second item of a two-item antecedent (A and B -> C)

    @property
    def antecedents(self) -> tuple[str, ...]:
        return (
            (self.antecedent,) if self.antecedent2 is None else (self.antecedent, self.antecedent2)
        )


@dataclass(frozen=True)
class Suggestion:
    item: str
    score: float
    because: str
    confidence: float
    lift: float
    because2: str | None = None  # the rule's second antecedent, when it has two

    def reason(self, labels: dict[str, str] | None = None) -> str:
        """In words, with items named by ``labels`` (e.g. SKU -> product name) when given."""
        name = (labels or {}).get
        second = None if self.because2 is None else name(self.because2, self.because2)
        return reason_text(
            name(self.item, self.item),
            name(self.because, self.because),
            second,
            self.confidence,
            self.lift,
        )


def reason_text(
    item: str, because: str, because2: str | None, confidence: float, lift: float
) -> str:
    """A suggestion's reason in words: "bought A (and B); 38% of such customers buy C, 4.2x the
    usual rate"."""
    bought = because if because2 is None else f"{because} and {because2}"
    return (
        f"bought {bought}; {confidence:.0%} of such customers buy {item}, "
        f"{lift:.1f}x the usual rate"
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
    # Two-item antecedents: row j of the pair matrices is the pair (pairs[j, 0], pairs[j, 1]).
    pairs: NDArray[np.intp] = field(default_factory=lambda: np.zeros((0, 2), dtype=np.intp))
    pair_confidence: sp.csr_matrix | None = None
    pair_lift: sp.csr_matrix | None = None
    pair_support: sp.csr_matrix | None = None
    pair_count: sp.csr_matrix | None = None

    @property
    def size(self) -> int:
        """How many rules: one-item and two-item antecedents."""
        return int(self.lift.nnz) + (0 if self.pair_lift is None else int(self.pair_lift.nnz))

    def rules(self, *, min_lift: float = 0.0, limit: int | None = None) -> list[Rule]:
        """Every rule with at least ``min_lift``, the strongest (lift, then confidence, then
        support) first."""
        found: list[tuple[float, float, float, Rule]] = []
        sources = [(self.lift, self.confidence, self.support, self.count, None)]
        if self.pair_lift is not None:
            sources.append(
                (
                    self.pair_lift,
                    self.pair_confidence,
                    self.pair_support,
                    self.pair_count,
                    self.pairs,
                )
            )
        for lift_m, conf_m, supp_m, count_m, pairs in sources:
            coo = lift_m.tocoo()
            keep = coo.data >= min_lift
            rows, cols, lifts = coo.row[keep], coo.col[keep], coo.data[keep]
            if len(rows) == 0:
                continue
            conf = np.asarray(conf_m[rows, cols]).ravel()
            supp = np.asarray(supp_m[rows, cols]).ravel()
            cnt = np.asarray(count_m[rows, cols]).ravel()
            for i in range(len(rows)):
                first, second = (
                    (self.items[rows[i]], None)
                    if pairs is None
                    else (self.items[pairs[rows[i], 0]], self.items[pairs[rows[i], 1]])
                )
                rule = Rule(
                    first,
                    self.items[cols[i]],
                    float(supp[i]),
                    float(conf[i]),
                    float(lifts[i]),
                    int(cnt[i]),
                    second,
                )
                found.append((-rule.lift, -rule.confidence, -rule.support, rule))
        found.sort(key=lambda t: t[:3])
        ranked = [t[3] for t in found]
        return ranked if limit is None else ranked[:limit]


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
    shape = (len(items), len(items))

    def square(values: NDArray[np.float64]) -> sp.csr_matrix:
        return sp.csr_matrix((values[keep], (a[keep], b[keep])), shape=shape)

    rule_set = RuleSet(
        items,
        n,
        item_count / n,
        square(confidence),
        square(lift),
        square(support),
        square(both.astype(np.float64)),
    )
    _mine_pairs(rule_set, x, pairs.tocsr(), item_count, thresholds)
    return rule_set


PAIR_CHUNK = 256  # pairs counted per sparse product (bounds the pair-indicator matrix)


def _mine_pairs(
    rules: RuleSet,
    x: sp.csc_matrix,
    co: sp.csr_matrix,
    item_count: NDArray[np.float64],
    thresholds: Thresholds,
) -> None:
    """Add the two-item rules (A and B -> C) over the thresholds that improve on their one-item
    rules to ``rules``. ``co`` is ``X.T @ X``: co[a, c] counts the baskets holding a and c."""
    n = rules.baskets
    n_items = len(rules.items)
    min_both = max(thresholds.min_count, thresholds.min_support * n)
    upper = sp.triu(co, k=1).tocoo()
    frequent = upper.data >= min_both
    pa, pb, pair_n = upper.row[frequent], upper.col[frequent], upper.data[frequent]
    top = np.argsort(-pair_n, kind="stable")[: thresholds.max_pairs]
    pa, pb, pair_n = pa[top], pb[top], pair_n[top]
    kept_rows: list[NDArray[np.intp]] = []
    kept_cols: list[NDArray[np.intp]] = []
    kept_both: list[NDArray[np.float64]] = []
    for start in range(0, len(pa), PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        holds_pair = x[:, pa[part]].multiply(x[:, pb[part]]).tocsc()
        triples = (holds_pair.T @ x).tocoo()  # [pair, c]: baskets holding a, b and c
        j = triples.row + start
        c = triples.col
        both = triples.data
        a, b = pa[j], pb[j]
        confidence = both / pair_n[j]
        lift = confidence / (item_count[c] / n)
        single = np.maximum(
            np.asarray(co[a, c]).ravel() / item_count[a],
            np.asarray(co[b, c]).ravel() / item_count[b],
        )
        keep = (
            (c != a)
            & (c != b)
            & (both / n >= thresholds.min_support)
            & (confidence >= thresholds.min_confidence)
            & (lift >= thresholds.min_lift)
            & (both >= thresholds.min_count)
            & (confidence >= single * (1.0 + thresholds.min_improvement))
        )
        kept_rows.append(j[keep])
        kept_cols.append(c[keep])
        kept_both.append(both[keep])
    if not kept_rows or not sum(len(r) for r in kept_rows):
        return
    rows = np.concatenate(kept_rows)
    cols = np.concatenate(kept_cols)
    both = np.concatenate(kept_both).astype(np.float64)
    # Only pairs with a rule keep a row.
    used, rows = np.unique(rows, return_inverse=True)
    shape = (len(used), n_items)
    counts = pair_n[used].astype(np.float64)
    confidence = both / counts[rows]

    def matrix(values: NDArray[np.float64]) -> sp.csr_matrix:
        return sp.csr_matrix((values, (rows, cols)), shape=shape)

    rules.pairs = np.stack([pa[used], pb[used]], axis=1).astype(np.intp)
    rules.pair_count = matrix(both)
    rules.pair_support = matrix(both / n)
    rules.pair_confidence = matrix(confidence)
    rules.pair_lift = matrix(confidence / rules.item_share[cols])


def owned_pairs(history: sp.csr_matrix, rules: RuleSet) -> sp.csr_matrix:
    """customers x rule pairs: 1 where the customer bought both items of the pair."""
    owned = history.tocsc()
    if len(rules.pairs) == 0:
        return sp.csr_matrix((history.shape[0], 0))
    return owned[:, rules.pairs[:, 0]].multiply(owned[:, rules.pairs[:, 1]]).tocsr()


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


@dataclass
class Picks:
    """Suggestions as parallel arrays, one entry a (customer row, item) pick, rows ascending and
    each row's picks best first: the form the refresh stores with no object per pick.
    ``because2`` is -1 where the reason is a one-item rule."""

    row: NDArray[np.int64]
    item: NDArray[np.int64]
    score: NDArray[np.float64]
    because: NDArray[np.int64]
    because2: NDArray[np.int64]
    confidence: NDArray[np.float64]
    lift: NDArray[np.float64]

    @property
    def rank(self) -> NDArray[np.int64]:
        """1 for each row's best pick, then 2, 3..."""
        if len(self.row) == 0:
            return np.zeros(0, dtype=np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(self.row)) + 1]
        first = np.repeat(starts, np.diff(np.r_[starts, len(self.row)]))
        return np.arange(len(self.row)) - first + 1


def pick(history: sp.csr_matrix, rules: RuleSet, *, top: int = 3) -> Picks:
    """The ``top`` items each customer (a row of ``history``) has not bought, best first, each
    with its strongest rule as the reason. The reasons are found for all picks at once: every
    (pick, bought item) pair is looked up among the rules' sorted keys."""
    score = scores(history, rules)
    owned = history.tocsr()
    n_items = len(rules.items)
    # Per row, the best ``top`` columns, for all rows at once: entries sorted by (row, -score),
    # ties in stored order, and each row's first ``top`` kept.
    entry_row = np.repeat(np.arange(score.shape[0]), np.diff(score.indptr))
    order = np.lexsort((-score.data, entry_row))
    place = np.arange(len(order)) - score.indptr[entry_row[order]]
    chosen = order[place < top]
    rows = entry_row[chosen].astype(np.int64)
    picked = score.indices[chosen].astype(np.int64)
    pick_score = score.data[chosen].astype(np.float64)
    if len(rows) == 0:
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        return Picks(empty_i, empty_i, empty_f, empty_i, empty_i, empty_f, empty_f)
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
    picks = Picks(
        rows,
        picked,
        pick_score,
        bought[first],
        np.full(len(rows), -1, dtype=np.int64),
        confidence[first],
        rule_lift[at[first]],
    )
    _stronger_pair_rules(owned, rules, picks)
    return picks


def suggest(history: sp.csr_matrix, rules: RuleSet, *, top: int = 3) -> list[list[Suggestion]]:
    """``pick`` as one list of ``Suggestion`` per row of ``history``."""
    picks = pick(history, rules, top=top)
    out: list[list[Suggestion]] = [[] for _ in range(history.shape[0])]
    items = rules.items
    for k in range(len(picks.row)):
        second = int(picks.because2[k])
        out[int(picks.row[k])].append(
            Suggestion(
                items[int(picks.item[k])],
                float(picks.score[k]),
                items[int(picks.because[k])],
                float(picks.confidence[k]),
                float(picks.lift[k]),
                None if second < 0 else items[second],
            )
        )
    return out


def _stronger_pair_rules(owned: sp.csr_matrix, rules: RuleSet, picks: Picks) -> None:
    """Where a two-item rule from a pair the customer bought reaches a pick with more confidence
    than its best one-item rule, make it the reason (``picks`` is changed in place)."""
    if rules.pair_confidence is None or rules.pair_lift is None or not rules.pair_confidence.nnz:
        return
    rows, picked, confidence = picks.row, picks.item, picks.confidence
    n_items = len(rules.items)
    both = owned_pairs(owned, rules)[rows]  # picks x pairs the customer bought
    counts = np.diff(both.indptr)
    which = np.repeat(np.arange(len(rows)), counts)
    keys = both.indices.astype(np.int64) * n_items + picked[which]
    conf = rules.pair_confidence.tocoo()
    rule_keys = conf.row.astype(np.int64) * n_items + conf.col
    order = np.argsort(rule_keys)
    rule_keys, rule_conf = rule_keys[order], conf.data[order]
    lifts = rules.pair_lift.tocoo()
    rule_lift = lifts.data[np.argsort(lifts.row.astype(np.int64) * n_items + lifts.col)]
    if len(keys) == 0:
        return
    at = np.minimum(np.searchsorted(rule_keys, keys), len(rule_keys) - 1)
    hit = rule_keys[at] == keys
    if not hit.any():
        return
    which, pair, at = which[hit], both.indices[hit], at[hit]
    pair_conf = rule_conf[at]
    ranked = np.lexsort((-pair_conf, which))
    first = ranked[np.r_[0, np.flatnonzero(np.diff(which[ranked])) + 1]]
    chosen = which[first]
    better = pair_conf[first] > confidence[chosen]
    chosen, first = chosen[better], first[better]
    picks.because[chosen] = rules.pairs[pair[first], 0]
    picks.because2[chosen] = rules.pairs[pair[first], 1]
    picks.confidence[chosen] = pair_conf[first]
    picks.lift[chosen] = rule_lift[at[first]]
