"""A realistic, deterministic demo data set, written through the services' bulk paths.

The same seed gives the same data (dates are offsets from the anchor day, today by default).
About 18 months of history: companies and their contacts, deals moving through the stages,
emails, Slack messages, calls, meetings and notes, purchases, and some customers going quiet.
Benchmarks and tests use the same generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from crm.config import LOST_STAGE, WON_STAGE, Settings
from crm.models import Role
from crm.services import bulk
from crm.services.actor import Actor

HISTORY_DAYS = 548  # ~18 months

_FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Chris",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Paul",
    "Emily",
    "Steven",
    "Donna",
    "Andrew",
    "Michelle",
    "Kenneth",
    "Carol",
    "Joshua",
    "Amanda",
    "Kevin",
    "Melissa",
    "Brian",
    "Deborah",
    "Sophie",
    "Lukas",
    "Emma",
    "Léa",
    "Hugo",
    "Chloé",
    "Mateo",
    "Lucía",
    "Aarav",
    "Priya",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Olga",
    "Ivan",
    "Fatima",
    "Omar",
    "Zoë",
    "Björn",
    "Ingrid",
    "Sven",
    "Anika",
    "Raj",
    "Chen",
    "Ana",
    "João",
    "Marta",
    "Pedro",
    "Giulia",
    "Marco",
    "Noor",
    "Tariq",
    "Amara",
    "Kwame",
]
_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Dubois",
    "Moreau",
    "Rossi",
    "Russo",
    "Silva",
    "Santos",
    "Kowalski",
    "Nowak",
    "Tanaka",
    "Suzuki",
    "Sato",
    "Kim",
    "Park",
    "Singh",
    "Patel",
    "Wang",
    "Li",
    "Zhang",
    "Ivanova",
    "Petrov",
    "Andersson",
    "Johansson",
    "Nielsen",
    "O'Brien",
    "Okafor",
]
_PREFIX = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Aperture",
    "Pied",
    "Piper",
    "Blue",
    "Sky",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Litware",
    "Tailspin",
    "Adventure",
    "Fourth",
    "Coffee",
    "Proseware",
    "Lamna",
    "Trey",
    "Woodgrove",
    "Alpine",
    "Bluebird",
    "Cedar",
    "Delta",
    "Evergreen",
    "Falcon",
    "Granite",
    "Harbor",
    "Ionic",
    "Juniper",
    "Keystone",
    "Lumen",
    "Meridian",
    "Nimbus",
    "Orion",
    "Pinnacle",
    "Quantum",
    "Redwood",
    "Summit",
    "Titan",
    "Unity",
    "Vertex",
    "Willow",
    "Xenon",
    "Yonder",
    "Zenith",
    "Atlas",
    "Beacon",
    "Cascade",
    "Drift",
    "Ember",
    "Fjord",
    "Glacier",
    "Horizon",
    "Iris",
    "Jade",
    "Kestrel",
    "Lotus",
    "Maple",
    "Nova",
    "Onyx",
    "Polar",
]
_SUFFIX = [
    "Corp",
    "Inc",
    "Labs",
    "Systems",
    "Analytics",
    "Logistics",
    "Foods",
    "Health",
    "Energy",
    "Robotics",
    "Media",
    "Software",
    "Partners",
    "Consulting",
    "Retail",
    "Foundry",
    "Works",
    "Capital",
    "Networks",
    "Bio",
    "Studios",
    "Group",
    "Industries",
    "Dynamics",
    "Solutions",
]
_TLDS = ["com", "com", "com", "io", "co", "net", "de", "fr", "co.uk"]
_TOPICS = [
    "pricing question",
    "renewal",
    "onboarding",
    "invoice",
    "feature request",
    "integration help",
    "contract terms",
    "security review",
    "bug report",
    "expansion to a new team",
    "training session",
    "quarterly review",
    "data export",
    "SSO setup",
    "discount request",
    "usage report",
]
_PRODUCTS = [
    "Starter plan",
    "Team plan",
    "Business plan",
    "Add-on seats",
    "Support package",
    "Training",
]

# The product catalogue: (sku, name, category). Customers buy along "journeys" (below), so
# the purchase lines carry co-purchase structure: bought A and B, likely to buy C next.
CATALOGUE = [
    ("PLAN-START", "Starter plan", "Plans"),
    ("PLAN-TEAM", "Team plan", "Plans"),
    ("PLAN-BIZ", "Business plan", "Plans"),
    ("ADD-SEATS", "Add-on seats", "Add-ons"),
    ("ADD-SSO", "Single sign-on", "Add-ons"),
    ("ADD-AUDIT", "Audit log", "Add-ons"),
    ("ADD-API", "API access", "Add-ons"),
    ("ADD-EXPORT", "Data export", "Add-ons"),
    ("SVC-ONBOARD", "Onboarding", "Services"),
    ("SVC-TRAIN", "Training", "Services"),
    ("SVC-SUPPORT", "Support package", "Services"),
    ("SVC-MIGRATE", "Data migration", "Services"),
    ("INT-SLACK", "Slack connector", "Integrations"),
    ("INT-MAIL", "Mail connector", "Integrations"),
    ("INT-CAL", "Calendar sync", "Integrations"),
    ("INT-BI", "BI connector", "Integrations"),
]
# Products a kind of customer tends to buy, in the order they tend to buy them.
_JOURNEYS = {
    "small": [
        ["PLAN-START", "SVC-ONBOARD", "INT-MAIL", "INT-CAL", "SVC-TRAIN"],
        ["PLAN-START", "INT-SLACK", "ADD-SEATS", "PLAN-TEAM"],
    ],
    "mid": [
        ["PLAN-TEAM", "ADD-SEATS", "INT-SLACK", "ADD-SSO", "SVC-TRAIN"],
        ["PLAN-TEAM", "SVC-ONBOARD", "INT-MAIL", "INT-CAL", "ADD-EXPORT"],
    ],
    "large": [
        ["PLAN-BIZ", "SVC-MIGRATE", "ADD-SSO", "ADD-AUDIT", "SVC-SUPPORT"],
        ["PLAN-BIZ", "ADD-API", "INT-BI", "ADD-EXPORT", "SVC-SUPPORT"],
    ],
}


@dataclass
class DemoSummary:
    users: int = 0
    customers: int = 0
    contacts: int = 0
    deals: int = 0
    stage_changes: int = 0
    interactions: int = 0
    purchases: int = 0
    purchase_lines: int = 0
    follow_ups: int = 0
    quiet_customers: int = 0
    anchor: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


TEAM_DOMAIN = "example-crm.test"


def demo_exists(session: Session, seed: int) -> bool:
    """Whether this seed's demo data is in the database already (its admin user is)."""
    from sqlmodel import select

    from crm.models import User

    return (
        session.exec(
            select(User.id).where(User.email == f"admin+demo-{seed}@{TEAM_DOMAIN}")
        ).first()
        is not None
    )


def _slug(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def generate_demo(
    session: Session,
    *,
    settings: Settings,
    customers: int = 1_000,
    seed: int = 42,
    anchor: date | None = None,
    interactions_per_customer: float = 10.0,
    progress: Callable[[str, int, int], None] | None = None,
    actor: Actor | None = None,
) -> DemoSummary:
    """Create the demo data set in the open transaction and return what was made; ``progress``
    hears (stage, done, total) as it goes. Only admins load demo data; the audit trail names
    ``actor`` (default: a "demo" process)."""
    actor = actor or Actor.system("demo")
    actor.require_admin("load the demo data")
    if customers < 1:
        raise ValueError("customers must be at least 1")
    rng = random.Random(seed)
    anchor = anchor or datetime.now(UTC).date()
    now = datetime.combine(anchor, time(0, 0), tzinfo=UTC)
    start = now - timedelta(days=HISTORY_DAYS)
    summary = DemoSummary(anchor=anchor.isoformat())
    tag = f"demo-{seed}"
    report = progress or (lambda _stage, _done, _total: None)
    report("users", 0, 1)

    # Team: reps, a manager and an admin. Emails are unique per seed so demos can stack.
    n_reps = max(3, min(40, customers // 2_500))
    team_domain = TEAM_DOMAIN
    users = [
        {
            "name": "Ada Admin",
            "email": f"admin+{tag}@{team_domain}",
            "role": Role.admin.value,
            "timezone": settings.timezone,
        },
        {
            "name": "Max Manager",
            "email": f"manager+{tag}@{team_domain}",
            "role": Role.manager.value,
            "timezone": settings.timezone,
        },
    ]
    for i in range(n_reps):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        users.append(
            {
                "name": f"{first} {last}",
                "email": f"{_slug(first)}.{_slug(last)}.{i}+{tag}@{team_domain}",
                "role": Role.rep.value,
                "timezone": settings.timezone,
            }
        )
    user_ids = bulk.insert_users(session, users, actor=actor, label=tag)
    rep_ids = user_ids[2:]
    summary.users = len(user_ids)

    # Customers: a person at a company; several contacts may share a company domain.
    cust_rows: list[dict[str, Any]] = []
    emails: list[str] = []
    profiles: list[dict[str, Any]] = []
    n_companies = max(1, int(customers * 0.6))
    companies: list[tuple[str, str]] = []
    for c in range(n_companies):
        prefix = _PREFIX[c % len(_PREFIX)] if c < len(_PREFIX) else rng.choice(_PREFIX)
        name = f"{prefix} {rng.choice(_SUFFIX)}"
        domain = f"{_slug(name)}{c if c >= len(_PREFIX) else ''}.{rng.choice(_TLDS)}"
        companies.append((name, domain))
    for i in range(customers):
        company, domain = (
            companies[i % n_companies] if i < n_companies else companies[rng.randrange(n_companies)]
        )
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        tenure_days = int(rng.triangular(5, HISTORY_DAYS, HISTORY_DAYS * 0.7))
        joined = now - timedelta(days=tenure_days, seconds=rng.randrange(86_400))
        value_tier = rng.choices(["small", "mid", "large"], weights=[60, 30, 10])[0]
        roll = rng.random()
        # Lifecycle: some are still leads, most active, some churned, and some going quiet now.
        if roll < 0.12:
            status, quiet_after = "lead", None
        elif roll < 0.22:
            status, quiet_after = (
                "churned",
                joined + timedelta(days=rng.uniform(0.2, 0.7) * tenure_days),
            )
        elif roll < 0.34:
            status, quiet_after = "active", now - timedelta(days=rng.randint(35, 120))
            summary.quiet_customers += 1
        else:
            status, quiet_after = "active", None
        email = (
            f"{_slug(first)}.{_slug(last)}{i}@{domain}"
            if rng.random() < 0.85
            else f"{_slug(first)}.{_slug(last)}{i}@gmail.com"
        )
        cust_rows.append(
            {
                "name": f"{first} {last}",
                "company": company,
                "domain": domain,
                "status": status,
                "owner_id": rng.choice(rep_ids),
                "tags": [value_tier, tag],
                "created_at": joined,
                "updated_at": now,
            }
        )
        emails.append(email)
        profiles.append(
            {
                "joined": joined,
                "quiet_after": quiet_after,
                "tier": value_tier,
                "status": status,
                "first": first,
            }
        )
    customer_ids = bulk.insert_customers(session, cust_rows, actor=actor, label=tag)
    bulk.insert_contact_points(
        session,
        [
            {
                "customer_id": cid,
                "kind": "email",
                "value": email,
                "created_at": cust_rows[k]["created_at"],
            }
            for k, (cid, email) in enumerate(zip(customer_ids, emails, strict=True))
        ],
    )
    summary.customers = summary.contacts = len(customer_ids)
    report("customers", customers, customers)

    # Deals with stage histories.
    open_stages = settings.open_stages
    deal_rows: list[dict[str, Any]] = []
    deal_paths: list[list[tuple[str | None, str, datetime]]] = []
    deal_customer: list[int] = []
    for k, cid in enumerate(customer_ids):
        profile = profiles[k]
        n_deals = rng.choices([0, 1, 2, 3], weights=[35, 40, 18, 7])[0]
        for _ in range(n_deals):
            opened = profile["joined"] + timedelta(
                days=rng.uniform(0, max(1.0, (now - profile["joined"]).days - 1))
            )
            at, path, stage = opened, [(None, open_stages[0], opened)], open_stages[0]
            outcome = None
            for nxt in open_stages[1:]:
                at = at + timedelta(days=rng.expovariate(1 / 12))
                if at >= now or rng.random() < 0.25:
                    break
                path.append((stage, nxt, at))
                stage = nxt
            else:
                at = at + timedelta(days=rng.expovariate(1 / 10))
                if at < now:
                    outcome = WON_STAGE if rng.random() < 0.55 else LOST_STAGE
            if outcome is None and at < now - timedelta(days=60) and rng.random() < 0.6:
                outcome = LOST_STAGE
                at = min(now - timedelta(hours=1), at + timedelta(days=rng.uniform(1, 30)))
            if outcome:
                path.append((stage, outcome, at))
                stage = outcome
            base = {"small": 2_000, "mid": 15_000, "large": 90_000}[profile["tier"]]
            amount = Decimal(str(round(base * rng.lognormvariate(0, 0.5), -1))).quantize(
                Decimal("0.01")
            )
            status = "won" if stage == WON_STAGE else "lost" if stage == LOST_STAGE else "open"
            last_at = path[-1][2]
            deal_rows.append(
                {
                    "customer_id": cid,
                    "title": f"{rng.choice(_PRODUCTS)} for {cust_rows[k]['company']}",
                    "amount": amount,
                    "currency": settings.default_currency,
                    "stage": stage,
                    "status": status,
                    "owner_id": cust_rows[k]["owner_id"],
                    "expected_close_date": (opened + timedelta(days=rng.randint(20, 120))).date(),
                    "lost_reason": rng.choice(
                        ["price", "timing", "went with a competitor", "no budget"]
                    )
                    if status == "lost"
                    else None,
                    "stage_entered_at": last_at,
                    "closed_at": last_at if status != "open" else None,
                    "created_at": opened,
                    "updated_at": last_at,
                }
            )
            deal_paths.append(path)
            deal_customer.append(k)
    deal_ids = bulk.insert_deals(session, deal_rows, actor=actor, label=tag) if deal_rows else []
    changes = [
        {"deal_id": did, "from_stage": frm, "to_stage": to, "changed_at": at, "changed_by": "demo"}
        for did, path in zip(deal_ids, deal_paths, strict=True)
        for frm, to, at in path
    ]
    bulk.insert_stage_changes(session, changes)
    summary.deals, summary.stage_changes = len(deal_ids), len(changes)
    deals_by_customer: dict[int, list[int]] = {}
    for did, k in zip(deal_ids, deal_customer, strict=True):
        deals_by_customer.setdefault(k, []).append(did)
    report("deals", len(deal_ids), len(deal_ids))

    # Interactions: a Poisson-ish stream per customer, busier for bigger accounts, none after going quiet.
    batch: list[dict[str, Any]] = []
    channels = [
        "email",
        "email",
        "email",
        "slack",
        "slack",
        "call",
        "meeting",
        "note",
        "purchase",
        "purchase",
    ]
    rate_by_tier = {"small": 0.7, "mid": 1.0, "large": 1.6}
    weights: list[float] = []
    for profile in profiles:
        span_days = max(
            1.0, ((profile["quiet_after"] or now) - profile["joined"]).total_seconds() / 86_400
        )
        weight = rate_by_tier[profile["tier"]] * span_days / 365
        weights.append(weight * 0.3 if profile["status"] == "lead" else weight)
    # Scale so the data set has interactions_per_customer on average.
    scale = interactions_per_customer * customers / max(sum(weights), 1e-9)
    for k, cid in enumerate(customer_ids):
        profile = profiles[k]
        end = profile["quiet_after"] or now
        span_days = max(1.0, (end - profile["joined"]).total_seconds() / 86_400)
        count = _poisson(rng, weights[k] * scale)
        thread = 0
        for n in range(count):
            at = profile["joined"] + timedelta(seconds=rng.uniform(0, span_days * 86_400))
            if at >= now:
                continue
            channel = rng.choice(channels)
            if channel == "purchase" and profile["status"] == "lead":
                channel = "note"
            topic = rng.choice(_TOPICS)
            direction = (
                ("inbound" if rng.random() < 0.55 else "outbound")
                if channel in ("email", "slack")
                else (
                    "inbound"
                    if channel == "purchase"
                    else "outbound"
                    if channel in ("call", "meeting")
                    else "internal"
                )
            )
            if n % 3 == 0:
                thread += 1
            deal_list = deals_by_customer.get(k)
            row = {
                "customer_id": cid,
                "deal_id": rng.choice(deal_list) if deal_list and rng.random() < 0.3 else None,
                "channel": channel,
                "direction": direction,
                "occurred_at": at,
                "subject": "Purchase"
                if channel == "purchase"
                else f"Re: {topic}"
                if n % 3
                else topic.capitalize(),
                "body": "" if channel == "purchase" else f"{profile['first']} about {topic}.",
                "author": emails[k] if direction == "inbound" else None,
                "source": tag,
                "external_id": f"{cid}-{n}",
                "thread_key": f"{tag}-{cid}-{thread}" if channel in ("email", "slack") else None,
                "amount": Decimal(
                    str(
                        round(
                            {"small": 80, "mid": 400, "large": 2_500}[profile["tier"]]
                            * rng.lognormvariate(0, 0.6),
                            2,
                        )
                    )
                )
                if channel == "purchase"
                else None,
                "currency": settings.default_currency if channel == "purchase" else None,
                "created_at": at,
                "updated_at": at,
            }
            summary.purchases += channel == "purchase"
            batch.append(row)
        if len(batch) >= 50_000:
            summary.interactions += bulk.insert_interactions(session, batch, actor=actor, label=tag)
            batch = []
        if k % 500 == 499:
            report("interactions", k + 1, customers)
    if batch:
        summary.interactions += bulk.insert_interactions(session, batch, actor=actor, label=tag)
    report("interactions", customers, customers)
    summary.purchase_lines = _purchase_lines(
        session, seed, tag, {cid: profiles[k]["tier"] for k, cid in enumerate(customer_ids)}, actor
    )

    # Follow-ups: some overdue, some due soon, a few done.
    follow_ups = []
    for k, cid in enumerate(customer_ids):
        if profiles[k]["status"] == "churned" or rng.random() > 0.25:
            continue
        due = now + timedelta(days=rng.uniform(-10, 21), hours=9)
        done = rng.random() < 0.2 and due < now
        follow_ups.append(
            {
                "customer_id": cid,
                "owner_id": cust_rows[k]["owner_id"],
                "due_at": due,
                "note": f"Check in about {rng.choice(_TOPICS)}",
                "status": "done" if done else "open",
                "completed_at": due if done else None,
                "created_at": due - timedelta(days=7),
                "updated_at": now,
            }
        )
    if follow_ups:
        bulk.insert_follow_ups(session, follow_ups, actor=actor, label=tag)
    summary.follow_ups = len(follow_ups)
    summary.extra["surveys"] = _surveys(session, seed, customer_ids, profiles, now)
    return summary


def _surveys(
    session: Session,
    seed: int,
    customer_ids: list[int],
    profiles: list[dict[str, Any]],
    now: datetime,
) -> int:
    """Answered satisfaction surveys for about a third of the paying customers, one to three
    each, while they were still buying. Customers on their way out (those who go quiet or
    churn later) rate lower on average, as in life; every rating is given before the customer
    goes quiet, so none is read off what happens after it. Their own random stream, so the
    rest of the demo is the same with or without them."""
    from crm.models import Survey

    rng = random.Random(seed * 7919 + 17)
    rows: list[dict[str, Any]] = []
    for cid, profile in zip(customer_ids, profiles, strict=True):
        if profile["status"] == "lead" or rng.random() > 0.35:
            continue
        leaving = profile["quiet_after"] is not None
        end = profile["quiet_after"] or now
        span = (end - profile["joined"]).total_seconds()
        if span < 86_400 * 14:
            continue
        weights = [20, 25, 25, 18, 12] if leaving else [4, 8, 20, 35, 33]
        for _ in range(rng.randint(1, 3)):
            answered = profile["joined"] + timedelta(seconds=rng.uniform(0.2, 0.95) * span)
            rows.append(
                {
                    "customer_id": cid,
                    "trigger": "support_reply",
                    "status": "answered",
                    "created_at": answered - timedelta(hours=rng.uniform(1, 72)),
                    "expires_at": answered + timedelta(days=14),
                    "answered_at": answered,
                    "rating": rng.choices([1, 2, 3, 4, 5], weights=weights)[0],
                }
            )
    if rows:
        session.execute(sa.insert(Survey.__table__), rows)  # type: ignore[attr-defined]
    return len(rows)


def _purchase_lines(
    session: Session, seed: int, tag: str, tiers: dict[int, str], actor: Actor
) -> int:
    """A line item for every demo purchase: each customer follows one journey of its tier,
    mostly taking the next product on it, now and then buying a product off it."""
    stored = bulk.product_ids(session, [sku for sku, _, _ in CATALOGUE])
    missing = [row for row in CATALOGUE if row[0] not in stored]
    if missing:
        new_ids = bulk.insert_products(
            session,
            [{"sku": sku, "name": name, "category": category} for sku, name, category in missing],
            actor=actor,
            label=tag,
        )
        stored.update(zip([row[0] for row in missing], new_ids, strict=True))
    # A generator of its own, so the rest of the demo stays what it was for each seed.
    rng = random.Random(f"{seed}-products")
    skus = [sku for sku, _, _ in CATALOGUE]
    by_customer: dict[int, list[tuple[datetime, int]]] = {}
    for iid, cid, at in bulk.purchases_of_source(session, tag):
        by_customer.setdefault(cid, []).append((at, iid))
    lines = []
    for cid in sorted(by_customer):
        journey = rng.choice(_JOURNEYS[tiers.get(cid, "mid")])
        step = 0
        for _, iid in sorted(by_customer[cid]):
            if step < len(journey) and rng.random() < 0.85:
                sku = journey[step]
                step += 1
            else:
                sku = rng.choice(skus)
            lines.append(
                {"interaction_id": iid, "product_id": stored[sku], "quantity": rng.randint(1, 3)}
            )
    for start in range(0, len(lines), 50_000):
        bulk.insert_purchase_lines(session, lines[start : start + 50_000], actor=actor, label=tag)
    return len(lines)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation keeps large rates cheap
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1
