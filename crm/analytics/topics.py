"""What customers talk about: keywords per customer and topics per segment, from interaction text.

Text is what capture kept of each message (mail's new text: quotes and signatures are gone
already; Slack messages, notes, call and meeting logs). Each text becomes *terms*: lower-case
words of at least three letters (numbers, addresses, links and anything with a digit dropped),
minus the stop words of its language, and the pairs of adjacent words that survive ("invoice
address"). The language is the one whose stop words cover most of the text's words (scikit-
learn's list for English, the stopwords-iso lists for the others mail capture reads); a text in
no known language keeps its words, minus English stop words.

Names are not topics: a word that is only ever written with a capital letter in the text read
together (a run's new interactions), and not yet known as a term, is taken for a name and
dropped, as are the words of the customer's own name (except in languages that capitalise every
noun: German).

A customer's keywords are their terms with the highest TF-IDF (documents are customers: a
word everyone uses says nothing about anyone); a single word gives its place to a pair that
holds it and accounts for most of its uses. Topics per segment: NMF over the TF-IDF matrix of
the segment's customers who wrote or were written to in the period, each topic named by its
strongest terms.

Everything here is computation on plain Python and numpy values; crm.services.topics keeps the
running counts in the store, so a refresh reads only the interactions added since the last.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

# Words that open and close messages in many languages and say nothing of the subject, and
# what is left of English contractions once their apostrophe splits them.
COURTESY = frozenset(
    """
    hi hello hey dear thanks thank thx cheers regards best kind sincerely please pls ok okay yes
    hallo liebe lieber danke vielen dank grüße gruß viele freundlichen bitte guten tag
    bonjour salut merci cordialement bien madame monsieur
    hola gracias saludos estimado estimada atentamente
    ciao grazie saluti cordiali gentile
    hoi bedankt groeten vriendelijke
    olá obrigado obrigada cumprimentos
    hej tack hälsningar mvh
    don doesn didn isn aren wasn weren haven hasn hadn won wouldn couldn shouldn mustn needn
    """.split()  # noqa: SIM905 (one line per language reads better)
)
# The languages whose stop words are used, besides English (those mail capture reads).
LANGUAGES = (
    "de", "fr", "es", "it", "nl", "pt", "sv", "da", "no", "fi", "pl", "cs", "sk", "hu", "ro",
    "tr", "ru", "uk", "el", "ca", "hr", "sl", "et", "lv", "lt",
)  # fmt: skip
# Languages that write every noun with a capital letter: no name is told by its capital there.
NOUNS_CAPITALISED = frozenset({"de"})
MAX_TERMS = 40  # terms kept per customer (the most used)
KEYWORDS = 5

# A whitespace-separated piece that is an address, a link, or holds a digit.
_DROP = re.compile(r"\d|@|://|^www\.", re.IGNORECASE)
# Letters only; an apostrophe splits ("l'adresse" is "l" and "adresse"; "don't" is "don", "t").
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|-(?=[^\W\d_]))*")


@cache
def stop_words() -> dict[str, frozenset[str]]:
    """Language code -> its stop words (lower case)."""
    import stopwordsiso
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    lists = {"en": frozenset(ENGLISH_STOP_WORDS)}
    known = set(stopwordsiso.langs())
    for code in LANGUAGES:
        if code in known:
            lists[code] = frozenset(w.lower() for w in stopwordsiso.stopwords(code))
    return lists


def words(text: str) -> list[str]:
    """The words of ``text`` as written (case kept), without links, addresses and anything
    holding a digit."""
    if not text:
        return []
    kept = [piece for piece in text.split() if not _DROP.search(piece)]
    return _WORD.findall(" ".join(kept))


@cache
def _languages_of() -> dict[str, tuple[str, ...]]:
    """Word -> the languages it is a stop word of."""
    index: dict[str, list[str]] = {}
    for code, stops in stop_words().items():
        for word in stops:
            index.setdefault(word, []).append(code)
    return {word: tuple(codes) for word, codes in index.items()}


@cache
def _stops_for(code: str | None) -> frozenset[str]:
    """The stop words a text in ``code`` loses: English's (mail mixes it in everywhere), the
    language's own, and the courtesy words."""
    lists = stop_words()
    return lists["en"] | (lists[code] if code else frozenset()) | COURTESY


def language(lowered: Sequence[str]) -> str | None:
    """The language whose stop words cover most of these words (at least two of them and one
    in ten), or None."""
    if not lowered:
        return None
    index = _languages_of()
    hits: Counter[str] = Counter()
    for word in lowered:
        codes = index.get(word)
        if codes:
            hits.update(codes)
    if not hits:
        return None
    best, n = max(hits.items(), key=lambda kv: (kv[1], kv[0] == "en"))
    return best if n >= 2 and n * 10 >= len(lowered) else None


@dataclass(frozen=True)
class Text:
    """One interaction's text and whose it is."""

    customer_id: int
    text: str


def extract(
    texts: Iterable[Text],
    *,
    known_terms: Callable[[set[str]], set[str]] | frozenset[str] | set[str] = frozenset(),
    own_names: Mapping[int, Iterable[str]] | None = None,
) -> dict[int, Counter[str]]:
    """Customer id -> term counts over their texts (see the module's description)."""
    batch = list(texts)
    split = [words(t.text) for t in batch]
    # Capitalised-only words of the batch are names unless already known as terms.
    lower_seen: set[str] = set()
    capital_seen: set[str] = set()
    for ws in split:
        for w in ws:
            (capital_seen if w[:1].isupper() else lower_seen).add(w.lower())
    candidates = capital_seen - lower_seen
    known = known_terms(candidates) if callable(known_terms) else set(known_terms)
    names = candidates - known
    out: dict[int, Counter[str]] = {}
    for item, ws in zip(batch, split, strict=True):
        lowered = [w.lower() for w in ws]
        code = language(lowered)
        stops = _stops_for(code)
        named = frozenset() if code in NOUNS_CAPITALISED else names
        own = {n.lower() for n in (own_names or {}).get(item.customer_id, ())}
        keep = [
            w if (len(w) >= 3 and w not in stops and w not in named and w not in own) else None
            for w in lowered
        ]  # fmt: skip
        terms: list[str] = [w for w in keep if w]
        terms += [f"{a} {b}" for a, b in zip(keep, keep[1:], strict=False) if a and b and a != b]
        if terms:
            out.setdefault(item.customer_id, Counter()).update(terms)
    return out


def merge(
    old: Mapping[str, int] | None, new: Mapping[str, int], cap: int = MAX_TERMS
) -> dict[str, int]:
    """A customer's running term counts with new counts added, keeping the ``cap`` most used."""
    merged = Counter(old or {})
    merged.update(new)
    kept = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:cap]
    return dict(kept)


def keywords(
    counts: Mapping[str, int], df: Mapping[str, int], documents: int, top: int = KEYWORDS
) -> list[str]:
    """The ``top`` terms with the highest TF-IDF (smoothed idf, as scikit-learn's); a word that
    a pair holding it accounts for more than half the uses of is replaced by the pair."""
    total = sum(counts.values())
    if not total:
        return []
    n = max(documents, 1)
    weight = {
        t: (c / total) * (math.log((1 + n) / (1 + df.get(t, 1))) + 1.0) for t, c in counts.items()
    }
    ranked = sorted(weight, key=lambda t: (-weight[t], t))
    pairs = [(p, p.split(" ")) for p in ranked if " " in p]
    chosen: list[str] = []
    for term in ranked:
        if len(chosen) == top:
            break
        if " " not in term:
            # A word that a pair holding it accounts for more than half the uses of is said by
            # the pair: the pair takes its place.
            holder = next(
                (p for p, ws in pairs if term in ws and counts[p] * 2 > counts[term]), None
            )
            term = holder or term
        if term not in chosen:
            chosen.append(term)
    return chosen


@dataclass(frozen=True)
class Topic:
    label: str  # its strongest terms, joined by " / "
    terms: list[str]
    weight: float  # share of the segment's topic weight
    customers: int  # customers for whom it is the strongest topic


def topics(
    documents: Sequence[Mapping[str, int]], *, k_max: int = 5, seed: int = 0, top_terms: int = 3
) -> list[Topic]:
    """Topics of a set of term-count documents (a segment's customers): NMF on TF-IDF with k
    from 1 to ``k_max`` (about one topic per 20 documents), strongest first."""
    docs = [d for d in documents if d]
    if len(docs) < 5:
        return []
    from sklearn.decomposition import NMF
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.feature_extraction.text import TfidfTransformer

    vector = DictVectorizer()
    counts = vector.fit_transform(docs)
    # Terms used by one customer only make no topic.
    used = np.asarray((counts > 0).sum(axis=0)).ravel() >= 2
    if used.sum() < 2:
        return []
    counts = counts[:, used]
    names = np.asarray(vector.get_feature_names_out())[used]
    tfidf = TfidfTransformer().fit_transform(counts)
    k = max(1, min(k_max, len(docs) // 20, int(used.sum()) - 1))
    model = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=400)
    w = model.fit_transform(tfidf)
    h = model.components_
    strength = w.sum(axis=0)
    total = float(strength.sum()) or 1.0
    owner = np.bincount(w.argmax(axis=1), minlength=k)
    found = []
    for j in np.argsort(-strength):
        best = [str(names[i]) for i in np.argsort(-h[j])[: top_terms * 2] if h[j, i] > 0]
        # A pair already says its words: name the topic by pairs first, then single words
        # that no chosen pair holds.
        label_terms: list[str] = []
        for term in sorted(best, key=lambda t: (" " not in t, best.index(t))):
            if len(label_terms) == top_terms:
                break
            if " " not in term and any(term in p.split(" ") for p in label_terms):
                continue
            label_terms.append(term)
        if label_terms:
            found.append(
                Topic(
                    " / ".join(label_terms), label_terms, float(strength[j]) / total, int(owner[j])
                )
            )
    return found
