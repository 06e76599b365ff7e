from __future__ import annotations

import random
from dataclasses import replace
from itertools import combinations, permutations

import pytest

from crm.analytics.baskets import Thresholds, basket_matrix, mine, suggest


def _planted(seed: int = 3, n: int = 600):
    """Baskets where bread brings butter (80%) and coffee brings milk (70%); tea is noise."""
    rng = random.Random(seed)
    baskets = []
    for _ in range(n):
        items = set()
        if rng.random() < 0.25:
            items.add("bread")
            if rng.random() < 0.8:
                items.add("butter")
        if rng.random() < 0.3:
            items.add("coffee")
            if rng.random() < 0.7:
                items.add("milk")
        for extra in ("tea", "butter", "milk"):
            if rng.random() < 0.1:
                items.add(extra)
        baskets.append(items)
    ids = [b for b, items in enumerate(baskets) for _ in items]
    names = [i for items in baskets for i in sorted(items)]
    return baskets, ids, names


def test_rules_match_counting_by_hand_and_find_the_planted_pairs():
    baskets, ids, names = _planted()
    thresholds = Thresholds(min_support=0.02, min_confidence=0.3, min_lift=1.5, min_count=5)
    matrix, _, items = basket_matrix(ids, names)
    rules = {(r.antecedent, r.consequent): r for r in mine(matrix, items, thresholds).rules()}
    n = len([b for b in baskets if b])
    expected = {}
    for a, c in permutations(items, 2):
        both = sum(a in b and c in b for b in baskets)
        conf = both / sum(a in b for b in baskets)
        lift = conf / (sum(c in b for b in baskets) / n)
        if both / n >= 0.02 and conf >= 0.3 and lift >= 1.5 and both >= 5:
            expected[(a, c)] = (both / n, conf, lift)
    assert set(rules) == set(expected)
    for key, (support, confidence, lift) in expected.items():
        assert rules[key].support == pytest.approx(support)
        assert rules[key].confidence == pytest.approx(confidence)
        assert rules[key].lift == pytest.approx(lift)
    assert {("bread", "butter"), ("coffee", "milk")} <= set(rules)
    assert not any("tea" in key for key in rules)


def test_suggestions_skip_what_was_bought_and_give_the_strongest_rule_as_reason():
    _, ids, names = _planted()
    thresholds = Thresholds(min_support=0.02, min_confidence=0.3, min_lift=1.5, min_count=5)
    matrix, _, items = basket_matrix(ids, names)
    rules = mine(matrix, items, thresholds)
    # "pad" bought every item, so the history's columns are the rules' items in their order.
    history, customers, hist_items = basket_matrix(
        ["ann", "ann", "bob", *(["pad"] * len(items))], ["bread", "tea", "milk", *items]
    )
    assert hist_items == items
    picks = dict(zip(customers, suggest(history, rules, top=3), strict=True))
    ann = picks["ann"]
    assert ann and ann[0].item == "butter" and ann[0].because == "bread"
    assert "bought bread;" in ann[0].reason() and "x the usual rate" in ann[0].reason()
    assert all(s.item not in {"bread", "tea"} for s in ann)
    assert [s.item for s in picks["bob"]] == ["coffee"]
    assert picks["pad"] == []  # bought everything


def test_no_baskets_or_no_rules_is_empty_not_an_error():
    matrix, _, items = basket_matrix([], [])
    assert mine(matrix, items, Thresholds()).rules() == []
    matrix, _, items = basket_matrix([1, 2], ["a", "b"])
    rules = mine(matrix, items, Thresholds())
    assert rules.rules() == [] and suggest(matrix, rules) == [[], []]


def _pairs_planted(seed: int = 11, n: int = 2000):
    """Chips alone or salsa alone rarely bring beer (10%); both together mostly do (70%).
    Bread brings butter (80%) whatever else is in the basket."""
    rng = random.Random(seed)
    baskets = []
    for _ in range(n):
        items = set()
        chips, salsa = rng.random() < 0.3, rng.random() < 0.3
        if chips:
            items.add("chips")
        if salsa:
            items.add("salsa")
        if rng.random() < (0.7 if chips and salsa else 0.1 if chips or salsa else 0.05):
            items.add("beer")
        if rng.random() < 0.4:
            items.add("bread")
            if rng.random() < 0.8:
                items.add("butter")
        if rng.random() < 0.2:
            items.add("tea")
        baskets.append(items)
    ids = [b for b, items in enumerate(baskets) for _ in items]
    names = [i for items in baskets for i in sorted(items)]
    return [b for b in baskets if b], ids, names


def test_two_item_rules_match_counting_by_hand_and_only_where_they_improve():
    baskets, ids, names = _pairs_planted()
    thresholds = Thresholds(min_support=0.02, min_confidence=0.3, min_lift=1.5, min_count=5)
    matrix, _, items = basket_matrix(ids, names)
    found = mine(matrix, items, thresholds).rules()
    pair_rules = {(frozenset(r.antecedents), r.consequent): r for r in found if r.antecedent2}
    n = len(baskets)

    def holds(*wanted):
        return sum(all(w in b for w in wanted) for b in baskets)

    expected = {}
    for a, b in combinations(items, 2):
        for c in items:
            if c in (a, b) or not holds(a, b):
                continue
            both = holds(a, b, c)
            conf = both / holds(a, b)
            lift = conf / (holds(c) / n)
            single = max(holds(a, c) / holds(a), holds(b, c) / holds(b))
            over = both / n >= 0.02 and conf >= 0.3 and lift >= 1.5 and both >= 5
            if over and holds(a, b) >= max(5, 0.02 * n) and conf >= single * 1.1:
                expected[(frozenset((a, b)), c)] = (both, conf, lift)
    assert set(pair_rules) == set(expected)
    for key, (count, confidence, lift) in expected.items():
        assert pair_rules[key].count == count
        assert pair_rules[key].confidence == pytest.approx(confidence)
        assert pair_rules[key].lift == pytest.approx(lift)
    assert (frozenset(("chips", "salsa")), "beer") in pair_rules
    # Bread -> butter holds whatever else was bought: no pair says more than bread alone.
    assert not any(c == "butter" for _, c in pair_rules)


def test_a_two_item_rule_names_the_reason_when_it_is_the_strongest():
    _, ids, names = _pairs_planted()
    thresholds = Thresholds(min_support=0.02, min_confidence=0.1, min_lift=1.2, min_count=5)
    matrix, _, items = basket_matrix(ids, names)
    rules = mine(matrix, items, thresholds)
    history, customers, hist_items = basket_matrix(
        ["both", "both", "one", *(["pad"] * len(items))], ["chips", "salsa", "chips", *items]
    )
    assert hist_items == items
    picks = dict(zip(customers, suggest(history, rules, top=3), strict=True))
    beer = next(s for s in picks["both"] if s.item == "beer")
    assert {beer.because, beer.because2} == {"chips", "salsa"} and beer.confidence > 0.6
    assert "bought chips and salsa;" in beer.reason()
    one = [s for s in picks["one"] if s.item == "beer"]
    assert all(s.because2 is None for s in picks["one"]) and (not one or one[0].confidence < 0.6)


def test_the_pairs_looked_at_are_capped():
    _, ids, names = _pairs_planted()
    matrix, _, items = basket_matrix(ids, names)
    loose = Thresholds(min_support=0.01, min_confidence=0.05, min_lift=1.0, min_count=1)
    assert len(mine(matrix, items, loose).pairs) > 1
    capped = mine(matrix, items, replace(loose, max_pairs=1))
    assert len(capped.pairs) <= 1
