"""Terms, keywords and topics from text (crm.analytics.topics): plain computation."""

from __future__ import annotations

import random
from collections import Counter

from crm.analytics import topics
from crm.analytics.topics import Text, extract, keywords, language, merge

THEMES = {
    "billing": [
        "invoice",
        "payment",
        "refund",
        "charge",
        "billing",
        "overdue",
        "receipt",
        "credit",
    ],
    "shipping": [
        "delivery",
        "shipment",
        "courier",
        "parcel",
        "tracking",
        "warehouse",
        "delayed",
        "package",
    ],
    "security": [
        "password",
        "login",
        "breach",
        "encryption",
        "firewall",
        "audit",
        "certificate",
        "phishing",
    ],
    "onboarding": [
        "training",
        "workshop",
        "tutorial",
        "onboarding",
        "setup",
        "walkthrough",
        "kickoff",
        "webinar",
    ],
}
FILLER = [
    "customer",
    "account",
    "product",
    "service",
    "team",
    "week",
    "update",
    "question",
    "issue",
    "today",
]


def _planted(seed: int = 7, per_theme: int = 60) -> tuple[list[dict[str, int]], list[str]]:
    """Customers each writing about one theme (its words mostly) amid common filler words."""
    rng = random.Random(seed)
    docs, truth = [], []
    for theme, vocab in THEMES.items():
        for _ in range(per_theme):
            text = []
            for _sentence in range(rng.randint(3, 6)):
                text += rng.sample(vocab, 3) + rng.sample(FILLER, 2)
            docs.append(Counter(w for w in text))
            truth.append(theme)
    return docs, truth


def test_planted_themes_are_recovered_as_topics():
    docs, _truth = _planted()
    found = topics.topics(docs, k_max=4, seed=0, top_terms=3)
    assert len(found) == 4
    matched = set()
    for topic in found:
        owners = {
            theme
            for theme, vocab in THEMES.items()
            if sum(t in vocab for t in topic.terms) * 2 > len(topic.terms)
        }
        assert len(owners) == 1, topic  # each topic is mostly one theme's words
        matched |= owners
    assert matched == set(THEMES)  # and every theme has its topic
    assert abs(sum(t.weight for t in found) - 1.0) < 1e-6


def test_terms_drop_stop_words_numbers_links_addresses_and_names():
    texts = [
        Text(1, "Hi Priya, the invoice address is wrong. Fix the invoice address by 12 May!"),
        Text(1, "Order 4711 see https://example.com/x or mail billing@example.com"),
        Text(2, "Priya asked about the invoice address too."),
    ]
    terms = extract(texts, own_names={1: ["Jane", "Doe"]})
    assert terms[1]["invoice address"] == 2 and terms[1]["invoice"] == 2
    said = set(terms[1]) | set(terms[2])
    assert "priya" not in said  # only ever written with a capital: a name
    assert not {"the", "is", "by", "hi", "may"} & said
    assert not any(ch.isdigit() for t in said for ch in t)
    assert not {"https", "example", "com", "billing"} & said


def test_known_terms_written_with_a_capital_are_kept():
    terms = extract([Text(1, "Renewal is due.")], known_terms={"renewal"})
    assert terms[1]["renewal"] == 1
    assert extract([Text(1, "Renewal is due.")]) == {}  # unknown and capitalised: taken for a name


def test_languages_get_their_own_stop_words_and_german_nouns_stay():
    assert (
        language(
            ["die", "lieferung", "ist", "leider", "noch", "nicht", "da", "und", "wir", "warten"]
        )
        == "de"
    )
    assert (
        language(["la", "facture", "est", "incorrecte", "et", "nous", "attendons", "encore"])
        == "fr"
    )
    terms = extract(
        [
            Text(1, "Die Lieferung ist leider noch nicht da, wir warten auf die Lieferung."),
            Text(2, "La facture est incorrecte, merci de corriger la facture."),
        ]
    )
    assert terms[1]["lieferung"] == 2 and not {"die", "ist", "noch", "nicht", "auf"} & set(terms[1])
    assert terms[2]["facture"] == 2 and not {"la", "est", "de", "merci"} & set(terms[2])


def test_text_in_no_known_language_and_empty_text_are_handled():
    terms = extract(
        [Text(1, ""), Text(2, "🚀🚀 !!! 123"), Text(3, "zorblax quimtrel zorblax vendatu")]
    )
    assert 1 not in terms and 2 not in terms
    assert terms[3]["zorblax"] == 2  # an unknown language keeps its words
    assert topics.topics([]) == [] and topics.topics([{"a": 1}] * 3) == []
    assert keywords({}, {}, 10) == []


def test_keywords_weigh_rare_terms_and_prefer_a_pair_over_its_words():
    counts = {"invoice address": 3, "invoice": 3, "address": 7, "customer": 9}
    df = {"invoice address": 2, "invoice": 5, "address": 5, "customer": 900}
    chosen = keywords(counts, df, documents=1000, top=3)
    assert "invoice address" in chosen
    assert "invoice" not in chosen  # the pair accounts for all its uses
    assert "address" in chosen  # used alone more often than in the pair
    assert chosen[-1] == "customer"  # everyone says "customer": it weighs least
    # A word the pair mostly accounts for gives its place to the pair.
    assert keywords({"late delivery": 2, "delivery": 3}, {}, documents=10, top=1) == [
        "late delivery"
    ]


def test_running_counts_keep_the_most_used_terms():
    old = {f"t{i:02d}": 1 for i in range(10)}
    merged = merge(old, {"t05": 4, "new": 3}, cap=3)
    assert merged == {"t05": 5, "new": 3, "t00": 1}
