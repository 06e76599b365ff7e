"""Duplicate customers: candidate pairs by blocking, scored field by field, with reasons in words.

Comparing every customer with every other is quadratic. Instead each customer gets a few
*blocking keys* (its normalised email and phone, its company domain, its name tokens, its
postcode with a name initial, its name with its city or street); only customers sharing a key
are compared. A key held by very many customers (a common surname, a big company's domain)
says little and would cost much, so such blocks are skipped; the other keys still bring
real duplicates together.

A compared pair is scored the Fellegi-Sunter way. Each field (given name, surname, email,
phone, street, city, postcode, company domain, company) gets an agreement level: exact,
close, different, or missing when one side lacks it. How telling each level is, is learned
from the customers being searched: how often it occurs between two customers picked at
random (u, counted on random pairs) and how often between duplicates (m), fitted together
with the share of duplicates among the compared pairs by expectation-maximisation. A pair's
evidence is the sum of its levels' log-likelihood ratios, and its score 0-100 is the fitted
posterior chance that the two are one customer. So a field that agrees by chance in this
store (one city for everyone, colleagues sharing an office) counts little here, while a
shared email (after normalising: ``j.doe+news@gmail.com`` is ``jdoe@gmail.com``) counts much.
Two names with no part alike are two people unless they share an email or a phone. The
reasons say in words which fields weighed most.

The reads are columnar (one SELECT for customers, one for contact points); nothing is loaded
as ORM objects.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import sqlalchemy as sa
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler
from sqlmodel import Session

from crm.models import ContactKind, ContactPoint, Customer, DuplicateDismissal
from crm.services.normalise import FREE_MAIL_DOMAINS

DEFAULT_MIN_SCORE = 70.0
# Blocks larger than this are skipped: the key is too common to tell people apart.
MAX_BLOCK = 60

# Words that say what kind of company or street it is, not which one.
_COMPANY_WORDS = frozenset(
    [
        "inc",
        "incorporated",
        "ltd",
        "limited",
        "llc",
        "llp",
        "plc",
        "gmbh",
        "ag",
        "sa",
        "sas",
        "sarl",
        "bv",
        "nv",
        "co",
        "corp",
        "corporation",
        "company",
        "group",
        "holding",
        "holdings",
        "the",
        "and",
        "of",
    ]
)
_STREET_WORDS = {
    "st": "street",
    "str": "street",
    "rd": "road",
    "ave": "avenue",
    "av": "avenue",
    "dr": "drive",
    "ln": "lane",
    "pl": "place",
    "cres": "crescent",
    "cct": "circuit",
    "ct": "court",
    "blvd": "boulevard",
    "hwy": "highway",
    "sq": "square",
}
_NON_WORD = re.compile(r"[^0-9a-z]+")
_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def _fold(text: str | None) -> str:
    """Lower case, accents and punctuation gone, single spaces."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    return " ".join(_NON_WORD.split(folded)).strip()


def email_key(email: str) -> str:
    """The mailbox an address reaches: ``+tags`` dropped, and Gmail's dots too."""
    local, _, domain = email.lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def phone_key(phone: str) -> str:
    """The last nine digits: the same number written with or without its country code."""
    digits = re.sub(r"\D", "", phone)
    return digits[-9:] if len(digits) >= 7 else ""


def _company(text: str | None) -> str:
    return " ".join(t for t in _fold(text).split() if t not in _COMPANY_WORDS)


def _street(text: str | None) -> str:
    return " ".join(_STREET_WORDS.get(t, t) for t in _fold(text).split())


def _postcode(text: str | None) -> str:
    return _fold(text).replace(" ", "")


def _name_parts(tokens: list[str]) -> list[str]:
    """Given name and surname: the first and last word (initials left out when possible)."""
    words = [t for t in tokens if len(t) > 1] or tokens
    if len(words) >= 2:
        return [words[0], words[-1]]
    return words


@dataclass
class Person:
    """One customer as the finder sees it: normalised fields."""

    id: int
    name: str
    company: str = ""
    domain: str = ""
    street: str = ""
    city: str = ""
    postcode: str = ""
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    # Derived once: given name and surname, and the name without spaces.
    parts: list[str] = field(init=False, repr=False, compare=False)
    squashed: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.parts = _name_parts(self.tokens)
        self.squashed = self.name.replace(" ", "")

    @property
    def tokens(self) -> list[str]:
        return self.name.split()


@dataclass(frozen=True)
class DuplicatePair:
    """Two customers that look like one, with a score 0-100 and the reasons in words."""

    low_id: int
    high_id: int
    score: float
    reasons: tuple[str, ...]


def person(
    id: int,
    name: str,
    *,
    company: str | None = None,
    domain: str | None = None,
    street: str | None = None,
    city: str | None = None,
    postcode: str | None = None,
    emails: Iterable[str] = (),
    phones: Iterable[str] = (),
) -> Person:
    """A customer's fields, normalised for comparing."""
    domain_text = (domain or "").lower()
    return Person(
        id=id,
        name=_fold(name),
        company=_company(company),
        domain="" if domain_text in FREE_MAIL_DOMAINS else domain_text,
        street=_street(street),
        city=_fold(city),
        postcode=_postcode(postcode),
        emails={email_key(e) for e in emails if e},
        phones={k for p in phones if p and (k := phone_key(p))},
    )


def _keys(p: Person) -> Iterator[str]:
    tokens = [t for t in p.tokens if len(t) > 1]
    for e in p.emails:
        yield "e:" + e
    for ph in p.phones:
        yield "p:" + ph
    if p.domain:
        yield "d:" + p.domain
    if tokens:
        yield "n:" + " ".join(sorted(tokens))
    for t in tokens:
        if len(t) > 2:
            yield "t:" + t  # a rare name word alone (common ones make blocks too big to use)
    if p.postcode:
        yield "pc:" + p.postcode
    street = p.street.split()
    if len(street) > 1:
        yield "st:" + " ".join(street[:2])
    for t in tokens:
        if p.postcode:
            yield f"pc:{p.postcode}:{t[0]}"
        if p.city:
            yield f"nc:{t}:{p.city}"
        if p.street:
            yield f"ns:{t}:{p.street.split()[0]}"
        if p.company:
            yield f"nco:{t}:{p.company.split()[0]}"
    if p.street and p.postcode:
        yield f"sp:{p.street}:{p.postcode}"
    if p.street and p.city:
        yield f"sc:{p.street}:{p.city}"


def candidate_pairs(people: list[Person], max_block: int = MAX_BLOCK) -> set[tuple[int, int]]:
    """Pairs of positions in ``people`` that share a blocking key (blocks too big skipped).

    A key of the name alone (``n:``, ``t:``) or with a company word (``nco:``) may hold a
    third as many: a name many customers share is found again, more cheaply, with their city,
    street, postcode, email, phone or company domain.
    """
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(people):
        for key in set(_keys(p)):
            blocks[key].append(i)
    pairs: set[tuple[int, int]] = set()
    name_only = max(2, max_block // 3)
    for key, members in blocks.items():
        limit = name_only if key.startswith(("n:", "t:", "nco:")) else max_block
        if 1 < len(members) <= limit:
            pairs.update(combinations(members, 2))
    return pairs


def name_similarity(a: Person, b: Person) -> float:
    """0-1: how alike two names are, word by word in any order.

    Each word of the shorter name is matched with its most alike word in the other (edit
    distance, a swap of two letters counting as one edit), and the
    *least* alike match counts: ``kwame andersson`` and ``kwame green`` share a given name but
    not a surname, so they are not alike. A name with words missing (``waller``, ``jane
    waller``) counts a little less; spacing typos (``madel ine``) are caught on the whole.
    """
    if not a.name or not b.name:
        return 0.0
    short, long = sorted((a.tokens, b.tokens), key=len)
    aligned = min(max(OSA.normalized_similarity(t, u) for u in long) for t in short)
    if len(short) < len(long):
        aligned *= 0.9
    whole = fuzz.ratio(a.name.replace(" ", ""), b.name.replace(" ", "")) / 100
    return max(aligned, whole if whole >= 0.9 else 0.0)


def _postcode_similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    # One character typed wrong, or two swapped.
    return 0.6 if len(a) == len(b) and OSA.distance(a, b) == 1 else 0.0


def _text_similarity(a: str, b: str) -> float:
    """0-1, forgiving word order and spaces put in or left out (``jervoisstreet``)."""
    return (
        max(fuzz.token_sort_ratio(a, b), fuzz.ratio(a.replace(" ", ""), b.replace(" ", ""))) / 100
    )


# The fields compared, each with its agreement levels (best first; the last is "different").
# A field one of the two customers lacks is "missing" and counts neither way.
MISSING = -1
FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("given name", ("exact", "close", "alike", "different")),
    ("surname", ("exact", "close", "alike", "different")),
    ("email", ("same", "different")),
    ("phone", ("same", "different")),
    ("street", ("same", "alike", "different")),
    ("city", ("same", "different")),
    ("postcode", ("same", "one character apart", "different")),
    ("company domain", ("same", "different")),
    ("company", ("same", "alike", "different")),
)
# Starting points (and a weak prior for the fit): the share of each level among true
# duplicates (m) and among two customers picked at random (u). Learned from the data.
_M0 = (
    (0.80, 0.08, 0.04, 0.08),
    (0.80, 0.08, 0.04, 0.08),
    (0.60, 0.40),
    (0.60, 0.40),
    (0.80, 0.10, 0.10),
    (0.85, 0.15),
    (0.80, 0.05, 0.15),
    (0.80, 0.20),
    (0.80, 0.10, 0.10),
)
_U0 = (
    (0.01, 0.01, 0.03, 0.95),
    (0.002, 0.003, 0.02, 0.975),
    (0.000001, 0.999999),
    (0.000001, 0.999999),
    (0.001, 0.004, 0.995),
    (0.02, 0.98),
    (0.01, 0.01, 0.98),
    (0.01, 0.99),
    (0.01, 0.02, 0.97),
)
CLOSE_NAME = 1  # the name level "close": at least one name part must be this alike
NAMES_DIFFER_AT_MOST = 20.0
# How many pairs' worth of belief the starting points carry against the data.
PRIOR_PAIRS = 50.0
# The share of compared pairs taken to be duplicates before the fit.
START_MATCH_SHARE = 0.05
RANDOM_PAIRS = 20_000
EM_ROUNDS = 40


def _name_level(sim: float, same: bool) -> int:
    if same:
        return 0
    return 1 if sim >= 0.92 else 2 if sim >= 0.8 else 3


def _name_levels(a: Person, b: Person) -> tuple[int, int]:
    """Levels of given name and surname, in either order (swapped names are one person)."""
    pa, pb = a.parts, b.parts
    if not pa or not pb:
        return MISSING, MISSING
    jw = JaroWinkler.normalized_similarity
    if len(pa) == 2 and len(pb) == 2:
        straight = (jw(pa[0], pb[0]), jw(pa[1], pb[1]))
        swapped = (jw(pa[0], pb[1]), jw(pa[1], pb[0]))
        if sum(swapped) > sum(straight):
            given, surname = swapped
            eq = (pa[0] == pb[1], pa[1] == pb[0])
        else:
            given, surname = straight
            eq = (pa[0] == pb[0], pa[1] == pb[1])
        levels = (_name_level(given, eq[0]), _name_level(surname, eq[1]))
    else:
        # One name is a single word: it is matched to the nearer word of the other.
        one, other = (pa, pb) if len(pa) == 1 else (pb, pa)
        best = max(other, key=lambda w: jw(one[0], w))
        levels = (MISSING, _name_level(jw(one[0], best), one[0] == best))
    if max(levels) > 1 and fuzz.ratio(a.squashed, b.squashed) >= 95:
        # Spacing typos ("madel ine"): alike on the whole.
        levels = tuple(min(lv, 1) if lv != MISSING else lv for lv in levels)  # type: ignore[assignment]
    return levels


def _address_sims(a: Person, b: Person) -> dict[str, float]:
    sims: dict[str, float] = {}
    if a.street and b.street:
        sims["street"] = _text_similarity(a.street, b.street)
    if a.city and b.city:
        sims["city"] = _text_similarity(a.city, b.city)
    if a.postcode and b.postcode:
        sims["postcode"] = _postcode_similarity(a.postcode, b.postcode)
    return sims


def _address_levels(a: Person, b: Person) -> list[int]:
    sims = _address_sims(a, b)
    street = sims.get("street")
    city = sims.get("city")
    postcode = sims.get("postcode")
    return [
        MISSING if street is None else 0 if street >= 0.9 else 1 if street >= 0.75 else 2,
        MISSING if city is None else 0 if city >= 0.85 else 1,
        MISSING if postcode is None else 0 if postcode == 1 else 1 if postcode else 2,
    ]


def compare(a: Person, b: Person) -> list[int]:
    """The agreement level of each field (``MISSING`` where one of them lacks it)."""
    given, surname = _name_levels(a, b)
    email = MISSING if not (a.emails and b.emails) else 0 if a.emails & b.emails else 1
    phone = MISSING if not (a.phones and b.phones) else 0 if a.phones & b.phones else 1
    domain = MISSING if not (a.domain and b.domain) else 0 if a.domain == b.domain else 1
    if a.company and b.company:
        s = fuzz.token_sort_ratio(a.company, b.company) / 100
        company = 0 if s >= 0.995 else 1 if s >= 0.85 else 2
    else:
        company = MISSING
    return [given, surname, email, phone, *_address_levels(a, b), domain, company]


@dataclass
class Model:
    """Fellegi-Sunter: per field and level, P(level | duplicate) and P(level | not)."""

    m: list[np.ndarray]
    u: list[np.ndarray]
    match_share: float

    @classmethod
    def default(cls) -> Model:
        return cls([np.array(x) for x in _M0], [np.array(x) for x in _U0], START_MATCH_SHARE)

    @property
    def weights(self) -> list[np.ndarray]:
        """log2 likelihood ratio of each level: what it adds to the evidence.

        Agreeing never counts against being one customer, and disagreeing never for it.
        """
        out = []
        for m, u in zip(self.m, self.u, strict=True):
            w = np.log2(m / u)
            w[0] = max(w[0], 0.0)
            w[-1] = min(w[-1], 0.0)
            out.append(w)
        return out

    def names_tell_duplicates(self) -> bool:
        """Whether duplicates have the same or close names more often than other pairs do."""
        return all(float(self.m[f][:2].sum()) > float(self.u[f][:2].sum()) for f in (0, 1))

    def log_odds(self, levels: np.ndarray) -> np.ndarray:
        """Posterior log2 odds of being one customer, per pair (rows of ``levels``)."""
        share = min(max(self.match_share, 1e-6), 1 - 1e-6)
        total = np.full(len(levels), np.log2(share / (1 - share)))
        weights = self.weights
        for f, w in enumerate(weights):
            col = levels[:, f]
            known = col != MISSING
            total[known] += w[col[known]]
        return total


def _one_hot_counts(col: np.ndarray, size: int, weights: np.ndarray) -> np.ndarray:
    known = col != MISSING
    return np.bincount(col[known], weights=weights[known], minlength=size)


def _levels(people: list[Person], pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    rows = [compare(people[i], people[j]) for i, j in pairs]
    return np.array(rows, dtype=np.int8).reshape(-1, len(FIELDS))


def fit_model(
    people: list[Person], candidates: list[tuple[int, int]], *, seed: int = 0
) -> tuple[Model, np.ndarray]:
    """Learn m and u from the customers searched; also the levels of every candidate.

    u (how often a level happens by chance) is counted on random pairs; m (how often it
    happens between duplicates) and the share of duplicates among the candidates are fitted
    by expectation-maximisation on the candidate pairs. Both start from, and are gently
    pulled towards, general defaults, so a small store still gets sensible weights.
    """
    model = Model.default()
    levels = _levels(people, candidates)
    n = len(people)
    if n >= 2:
        rng = np.random.default_rng(seed)
        k = min(RANDOM_PAIRS, n * (n - 1) // 2)
        i = rng.integers(0, n, size=k)
        j = rng.integers(0, n - 1, size=k)
        j[j >= i] += 1
        chance = _levels(people, zip(i.tolist(), j.tolist(), strict=True))
        ones = np.ones(len(chance))
        model.u = [
            (_one_hot_counts(chance[:, f], len(u0), ones) + PRIOR_PAIRS * np.array(u0))
            / ((chance[:, f] != MISSING).sum() + PRIOR_PAIRS)
            for f, u0 in enumerate(_U0)
        ]
    if len(levels) == 0:
        return model, levels
    chance_u = model.u
    # Pairs with the same levels in every field are alike to the fit: fit each pattern once,
    # weighted by how many pairs show it.
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    for _ in range(EM_ROUNDS):
        odds = model.log_odds(patterns)
        p = counts / (1 + np.exp2(-np.clip(odds, -60, 60)))
        q = counts - p
        model.m = [
            (_one_hot_counts(patterns[:, f], len(m0), p) + PRIOR_PAIRS * np.array(m0))
            / (p[patterns[:, f] != MISSING].sum() + PRIOR_PAIRS)
            for f, m0 in enumerate(_M0)
        ]
        model.u = [
            (_one_hot_counts(patterns[:, f], len(u), q) + PRIOR_PAIRS * u)
            / (q[patterns[:, f] != MISSING].sum() + PRIOR_PAIRS)
            for f, u in enumerate(chance_u)
        ]
        model.match_share = float(
            (p.sum() + PRIOR_PAIRS * START_MATCH_SHARE) / (len(levels) + PRIOR_PAIRS)
        )
    if not model.names_tell_duplicates():
        # The fit found a class, but not one of people written alike: a store with (almost)
        # no duplicates to learn from, where e.g. colleagues sharing a company form the only
        # group. Then the compared pairs are nearly all two people, so how often each level
        # occurs among them is its u; m stays at the defaults.
        u = [
            (_one_hot_counts(patterns[:, f], len(u0), counts.astype(float)) + PRIOR_PAIRS * u0)
            / ((levels[:, f] != MISSING).sum() + PRIOR_PAIRS)
            for f, u0 in enumerate(chance_u)
        ]
        model = Model([np.array(x) for x in _M0], u, START_MATCH_SHARE)
    return model, levels


def _reasons(a: Person, b: Person, levels: list[int], model: Model) -> tuple[str, ...]:
    """The fields in words: a shared email or phone first, then the rest by their weight."""
    weights = model.weights
    groups: list[tuple[float, list[str]]] = []

    def add(f: int, words: list[str]) -> None:
        if levels[f] != MISSING and words:
            groups.append((float(weights[f][levels[f]]), words))

    name = name_similarity(a, b)
    name_weight = sum(float(weights[f][levels[f]]) for f in (0, 1) if levels[f] != MISSING)
    if name >= 0.995:
        groups.append((name_weight, ["same name"]))
    elif name > 0:
        groups.append((name_weight, [f"names {name:.0%} alike"]))
    sims = _address_sims(a, b)
    if "street" in sims:
        s = sims["street"]
        add(4, ["same street" if s >= 0.995 else f"streets {s:.0%} alike"])
    if "city" in sims:
        s = sims["city"]
        add(5, ["same city" if s >= 0.995 else f"cities {s:.0%} alike"])
    if "postcode" in sims:
        s = sims["postcode"]
        add(
            6,
            [
                "same postcode"
                if s == 1
                else "postcodes one character apart"
                if s
                else "other postcode"
            ],
        )
    add(7, ["same company domain"] if levels[7] == 0 else [])
    if levels[8] != MISSING:
        s = fuzz.token_sort_ratio(a.company, b.company) / 100
        add(8, ["same company" if s >= 0.995 else f"companies {s:.0%} alike"])
    groups.sort(key=lambda g: -g[0])
    contact = [f"same {what}" for f, what in ((2, "email"), (3, "phone")) if levels[f] == 0]
    return (*contact, *(w for _, ws in groups for w in ws))


def _score(odds: float, levels: list[int]) -> float:
    """Posterior probability of one customer, 0-100.

    Two names with no part the same or close are two people (a household, colleagues),
    however much else agrees, unless they share an email or a phone.
    """
    score = round(100 / (1 + 2 ** -min(max(odds, -60.0), 60.0)), 1)
    names = [lv for lv in levels[:2] if lv != MISSING]
    if names and min(names) > CLOSE_NAME and 0 not in (levels[2], levels[3]):
        score = min(score, NAMES_DIFFER_AT_MOST)
    return score


def score_pair(a: Person, b: Person, model: Model | None = None) -> tuple[float, tuple[str, ...]]:
    """A score 0-100 (the chance the two are one customer) and the reasons."""
    model = model or Model.default()
    levels = compare(a, b)
    odds = float(model.log_odds(np.array([levels], dtype=np.int8))[0])
    return _score(odds, levels), _reasons(a, b, levels, model)


def score_people(
    people: list[Person], *, min_score: float = DEFAULT_MIN_SCORE
) -> list[DuplicatePair]:
    """Every candidate pair scoring at least ``min_score``, best first.

    The weights are learned from ``people`` themselves (``fit_model``).
    """
    candidates = sorted(candidate_pairs(people))
    model, levels = fit_model(people, candidates)
    found: list[DuplicatePair] = []
    if not candidates:
        return found
    odds = model.log_odds(levels)
    for (i, j), row, o in zip(candidates, levels, odds, strict=True):
        score = _score(float(o), row.tolist())
        if score >= min_score:
            a, b = people[i], people[j]
            low, high = sorted((a.id, b.id))
            found.append(DuplicatePair(low, high, score, _reasons(a, b, row.tolist(), model)))
    found.sort(key=lambda d: (-d.score, d.low_id, d.high_id))
    return found


def read_people(session: Session) -> list[Person]:
    """Every customer with its emails and phones, read column by column."""
    c = Customer.__table__.c  # type: ignore[attr-defined]
    cp = ContactPoint.__table__.c  # type: ignore[attr-defined]
    emails: dict[int, list[str]] = defaultdict(list)
    phones: dict[int, list[str]] = defaultdict(list)
    for customer_id, kind, value in session.execute(
        sa.select(cp.customer_id, cp.kind, cp.value).where(
            cp.kind.in_([ContactKind.email, ContactKind.phone])
        )
    ):
        (emails if kind == ContactKind.email else phones)[customer_id].append(value)
    rows = session.execute(
        sa.select(c.id, c.name, c.company, c.domain, c.street, c.city, c.postcode).order_by(c.id)
    )
    return [
        person(
            cid,
            name,
            company=company,
            domain=domain,
            street=street,
            city=city,
            postcode=postcode,
            emails=emails.get(cid, ()),
            phones=phones.get(cid, ()),
        )
        for cid, name, company, domain, street, city, postcode in rows
    ]


def dismissed_pairs(session: Session) -> set[tuple[int, int]]:
    t = DuplicateDismissal.__table__.c  # type: ignore[attr-defined]
    return {(low, high) for low, high in session.execute(sa.select(t.low_id, t.high_id))}


def find_duplicates(
    session: Session, *, min_score: float = DEFAULT_MIN_SCORE, limit: int | None = None
) -> list[DuplicatePair]:
    """Candidate duplicate pairs in the store, best first, leaving out pairs said to differ."""
    dismissed = dismissed_pairs(session)
    pairs = [
        p
        for p in score_people(read_people(session), min_score=min_score)
        if (p.low_id, p.high_id) not in dismissed
    ]
    return pairs[:limit] if limit is not None else pairs
