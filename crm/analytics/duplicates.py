"""Duplicate customers: candidate pairs by blocking, scored field by field, with reasons in words.

Comparing every customer with every other is quadratic. Instead each customer gets a few
*blocking keys* (its normalised email and phone, its company domain, its name tokens, its
postcode with a name initial, its name with its city or street); only customers sharing a key
are compared. A key held by very many customers (a common surname, a big company's domain)
says little and would cost much, so such blocks are skipped; the other keys still bring
real duplicates together.

A compared pair is scored 0-100 from the fields both customers have: a shared email or phone
(after normalising: ``j.doe+news@gmail.com`` is ``jdoe@gmail.com``) is strong evidence, names
must be alike for any high score, and the address (street, postcode, city) and company add
or take away. The reasons say which fields agreed, in words.

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

import sqlalchemy as sa
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA
from sqlmodel import Session

from crm.models import ContactKind, ContactPoint, Customer, DuplicateDismissal
from crm.services.normalise import FREE_MAIL_DOMAINS

DEFAULT_MIN_SCORE = 70.0
# Names less alike than this at one address are two people of a household or an office, not
# one customer twice (unless they share an email or a phone).
HOUSEHOLD_NAMES_BELOW = 0.6
# The highest score a pair gets when nothing but the name agrees.
NAME_ALONE_AT_MOST = 60.0
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


def score_pair(a: Person, b: Person) -> tuple[float, tuple[str, ...]]:
    """A score 0-100 and the reasons, from the fields both customers have."""
    reasons: list[str] = []
    name = name_similarity(a, b)
    if name >= 0.995:
        reasons.append("same name")
    elif name > 0:
        reasons.append(f"names {name:.0%} alike")
    # Weighted mean of what can be compared; the name always counts, and counts most.
    weights, sims = [3.0], [name]
    if a.street and b.street:
        s = _text_similarity(a.street, b.street)
        weights.append(2.0)
        sims.append(s)
        reasons.append("same street" if s >= 0.995 else f"streets {s:.0%} alike")
    if a.postcode and b.postcode:
        s = _postcode_similarity(a.postcode, b.postcode)
        weights.append(1.0)
        sims.append(s)
        reasons.append(
            "same postcode"
            if s == 1
            else "postcodes one character apart"
            if s
            else "other postcode"
        )
    if a.city and b.city:
        s = _text_similarity(a.city, b.city)
        weights.append(1.0)
        sims.append(s)
        reasons.append("same city" if s >= 0.995 else f"cities {s:.0%} alike")
    if a.company and b.company:
        s = fuzz.token_sort_ratio(a.company, b.company) / 100
        weights.append(1.0)
        sims.append(s)
        reasons.append("same company" if s >= 0.995 else f"companies {s:.0%} alike")
    score = 100 * sum(w * s for w, s in zip(weights, sims, strict=True)) / sum(weights)
    same_domain = bool(a.domain) and a.domain == b.domain
    if not same_domain and not any(s >= 0.8 for s in sims[1:]):
        # A name alone is weak evidence: many people share one. Something else must agree.
        score = min(score, NAME_ALONE_AT_MOST)
    if same_domain:
        reasons.insert(0, "same company domain")
        score = min(100.0, score + 5)
    contact = [
        what
        for what, shared in (("email", a.emails & b.emails), ("phone", a.phones & b.phones))
        if shared
    ]
    if contact:
        # One mailbox or number is one person unless the names disagree (a shared office line).
        reasons[:0] = [f"same {what}" for what in contact]
        score = max(score, 50 + 50 * name)
    if name < HOUSEHOLD_NAMES_BELOW and not contact:
        score = min(score, 50 * name + 20)  # same address, other person: a household
    return round(score, 1), tuple(reasons)


def score_people(
    people: list[Person], *, min_score: float = DEFAULT_MIN_SCORE
) -> list[DuplicatePair]:
    """Every candidate pair scoring at least ``min_score``, best first."""
    found: list[DuplicatePair] = []
    # Names this far apart with no shared email or phone score below min_score: skip the rest.
    household_cap = 50 * HOUSEHOLD_NAMES_BELOW + 20
    for i, j in candidate_pairs(people):
        a, b = people[i], people[j]
        if (
            min_score > household_cap
            and name_similarity(a, b) < HOUSEHOLD_NAMES_BELOW
            and not (a.emails & b.emails or a.phones & b.phones)
        ):
            continue
        score, reasons = score_pair(a, b)
        if score >= min_score:
            low, high = sorted((a.id, b.id))
            found.append(DuplicatePair(low, high, score, reasons))
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
