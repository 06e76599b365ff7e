"""Customers: find, create, update, merge, contact points, and the customer card."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm.models import (
    AuditEvent,
    Channel,
    ChannelLink,
    ContactKind,
    ContactPoint,
    Customer,
    CustomerCreate,
    CustomerMerge,
    CustomerStatus,
    CustomerUpdate,
    Deal,
    DealStatus,
    Direction,
    FollowUp,
    FollowUpStatus,
    Interaction,
    Survey,
    User,
    utcnow,
)
from crm.models.base import open_text
from crm.services.actor import Actor
from crm.services.audit import _jsonable, record_event, record_events, snapshot
from crm.services.errors import Ambiguous, CRMError, NotFound
from crm.services.keys import contact_digest
from crm.services.normalise import (
    clean_text,
    company_domain,
    is_email,
    looks_like_domain,
    name_key,
    normalise_domain,
    normalise_email,
    normalise_phone,
    normalise_slack_id,
    storable_id,
)
from crm.services.search import name_index_for
from crm.services.surveys import Satisfaction

_ID_REF = re.compile(r"^#?(\d{1,18})$")


@dataclass(frozen=True)
class CustomerMatch:
    customer: Customer
    score: float
    matched_on: str  # "id", "email", "domain", "name", "fuzzy"


def _label(customer: Customer) -> str:
    company = (
        f" ({customer.company})" if customer.company and customer.company != customer.name else ""
    )
    return f"#{customer.id} {customer.name}{company}"


def get_customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id) if storable_id(customer_id) else None
    if customer is None:
        raise NotFound(
            f"There is no customer #{customer_id}.",
            hint="Search by name, email or domain to find the right one.",
        )
    return customer


# Lookups run on every search: their statements are built once; only the values change.
_BY_EMAIL = (
    select(Customer)
    .join(ContactPoint)
    .where(ContactPoint.kind == ContactKind.email, ContactPoint.digest == sa.bindparam("digest"))
)
_BY_DOMAIN = (
    select(Customer)
    .where(Customer.domain == sa.bindparam("domain"))
    .order_by(col(Customer.id))
    .limit(sa.bindparam("limit"))
)
_BY_NAME_KEY = (
    select(Customer)
    .where(Customer.name_key == sa.bindparam("key"))
    .order_by(col(Customer.id))
    .limit(sa.bindparam("limit"))
)
_BY_IDS = select(Customer).where(col(Customer.id).in_(sa.bindparam("ids", expanding=True)))


def find_by_email(session: Session, email: str) -> Customer | None:
    digest = contact_digest(session, ContactKind.email, email)
    return session.exec(_BY_EMAIL, params={"digest": digest}).first()


def find_by_domain(session: Session, domain: str, limit: int = 20) -> list[Customer]:
    return list(session.exec(_BY_DOMAIN, params={"domain": domain, "limit": limit}))


def find_customers(session: Session, query: str, *, limit: int = 10) -> list[CustomerMatch]:
    """Customers matching an id, an email, a domain, or (fuzzily) a name or company."""
    text = query.strip()
    if not text:
        return []
    if (m := _ID_REF.match(text)) and storable_id(int(m.group(1))):
        customer = session.get(Customer, int(m.group(1)))
        if customer is not None:
            return [CustomerMatch(customer, 100.0, "id")]
    if is_email(text):
        customer = find_by_email(session, normalise_email(text))
        if customer is not None:
            return [CustomerMatch(customer, 100.0, "email")]
        domain = company_domain(normalise_email(text))
        return (
            [CustomerMatch(c, 90.0, "domain") for c in find_by_domain(session, domain, limit)]
            if domain
            else []
        )
    if looks_like_domain(text):
        found = find_by_domain(session, normalise_domain(text), limit)
        if found:
            return [CustomerMatch(c, 100.0, "domain") for c in found]
    key = name_key(text)
    exact = list(session.exec(_BY_NAME_KEY, params={"key": key, "limit": limit}))
    matches = [CustomerMatch(c, 100.0, "name") for c in exact]
    seen = {c.id for c in exact}
    scored = name_index_for(session).search(session, text, limit=limit + len(seen))
    wanted = [cid for cid, _ in scored if cid not in seen]
    if wanted:
        by_id = {c.id: c for c in session.exec(_BY_IDS, params={"ids": wanted})}
        for cid, score in scored:
            if cid in by_id and len(matches) < limit:
                matches.append(CustomerMatch(by_id[cid], float(score), "fuzzy"))
    return matches[:limit]


def resolve_customer(session: Session, ref: str) -> Customer:
    """Exactly one customer for what a user typed, or an error that asks or suggests."""
    matches = find_customers(session, ref, limit=6)
    if not matches:
        raise NotFound(
            f"No customer matches {ref!r}.",
            hint="Search by part of the name, an email or a domain, or add the customer first.",
        )
    best = matches[0]
    if best.matched_on in ("id", "email"):
        return best.customer
    strong = [m for m in matches if m.score >= best.score - 5]
    if len(strong) == 1 and (best.score >= 90 or best.matched_on in ("name", "domain")):
        return best.customer
    if best.score < 90:
        raise NotFound(
            f"No customer is called {ref!r}.", suggestions=[_label(m.customer) for m in matches[:5]]
        )
    raise Ambiguous(
        f"{len(strong)} customers match {ref!r}.",
        candidates=[_label(m.customer) for m in strong[:5]],
    )


# The postal address, in the order it is written; each part with its longest allowed length.
ADDRESS_FIELDS: dict[str, int] = {"street": 300, "city": 120, "postcode": 20, "country": 80}


def clean_address(parts: dict[str, str | None]) -> dict[str, str | None]:
    """Address parts with spaces collapsed; a postcode upper-cased (``sw1a 1aa``: ``SW1A 1AA``)."""
    cleaned = {
        name: clean_text(value, field=name, max_length=ADDRESS_FIELDS[name])
        for name, value in parts.items()
    }
    if cleaned.get("postcode"):
        cleaned["postcode"] = cleaned["postcode"].upper()  # type: ignore[union-attr]
    return cleaned


def format_address(customer: Customer) -> str | None:
    """The address on one line, or None when the customer has none."""
    parts = [customer.street, " ".join(p for p in (customer.postcode, customer.city) if p)]
    line = ", ".join(p for p in (*parts, customer.country) if p)
    return line or None


def _add_contact(
    session: Session, customer: Customer, kind: ContactKind, value: str, label: str | None
) -> ContactPoint:
    digest = contact_digest(session, kind, value)
    existing = session.exec(
        select(ContactPoint).where(ContactPoint.kind == kind, ContactPoint.digest == digest)
    ).first()
    if existing is not None:
        if existing.customer_id == customer.id:
            return existing
        other = session.get(Customer, existing.customer_id)
        raise CRMError(
            f"{value} already belongs to customer {_label(other) if other else existing.customer_id}.",
            hint="Merge the two customers if they are the same.",
        )
    point = ContactPoint(
        customer_id=customer.id,  # type: ignore[arg-type]
        kind=kind,
        value=value,
        digest=digest,
        label=label,
    )
    session.add(point)
    return point


def attach_email(
    session: Session,
    *,
    customer_id: int,
    email: str | None,
    actor: Actor,
    source: str,
    name: str,
    reasons: str,
    **details: Any,
) -> None:
    """A new person's record found to be this customer (an import row, a mail's sender): their
    address (if any) becomes the customer's, and the attach is in the audit trail with why."""
    if email:
        customer = get_customer(session, customer_id)
        _add_contact(session, customer, ContactKind.email, normalise_email(email), None)
        session.flush()
    record_event(
        session,
        actor=actor,
        action="attach",
        entity="customer",
        entity_id=customer_id,
        after={"source": source, "name": name, "email": email, **details, "reasons": reasons},
    )


@dataclass
class Detached:
    """An address taken back from a customer: the lead it became and the mail that went with it."""

    customer_id: int
    lead_id: int
    email: str
    interactions: list[int]


def detach_email(session: Session, *, customer_id: int, email: str, actor: Actor) -> Detached:
    """Undo an attach (or any address wrongly given to a customer): the address leaves the
    customer and becomes a lead of its own, named as the attach recorded it (else as its mail
    signs), with the email interactions it wrote and the replies sent to it. Audited."""
    actor.require_manager("detach an address from a customer")
    customer = get_customer(session, customer_id)
    address = normalise_email(email)
    emails = [p for p in contact_points(session, customer_id) if p.kind == ContactKind.email]
    point = next((p for p in emails if p.value == address), None)
    if point is None:
        raise NotFound(
            f"{_label(customer)} has no address {address}.",
            hint=f"`crmbot customer show {customer_id}` lists their addresses.",
        )
    if len(emails) == 1:
        raise CRMError(
            f"{address} is the only address of {_label(customer)}: there is nothing to detach it "
            "from.",
            hint=f"Give them their own address first (`crmbot customer update {customer_id} "
            "email=...`), then detach this one.",
        )

    def address_of(display: str | None) -> str:
        return parseaddr(display or "")[1].strip().lower()

    mail = session.exec(
        select(Interaction).where(
            Interaction.customer_id == customer_id, Interaction.channel == Channel.email
        )
    ).all()
    theirs = [
        i
        for i in mail
        if (i.direction == Direction.inbound and address_of(i.author) == address)
        or (
            i.direction == Direction.outbound
            and address_of((i.meta or {}).get("recipient")) == address
        )
    ]
    name = _attached_name(session, customer_id, address) or next(
        (n for n in (parseaddr(i.author or "")[0].strip() for i in theirs) if n), ""
    )
    session.delete(point)
    session.flush()
    lead = create_customer(
        session,
        customer_in=CustomerCreate(
            name=name or address.split("@", 1)[0], email=address, status=CustomerStatus.lead
        ),
        actor=actor,
    )
    assert lead.id is not None
    moved = sorted(int(i.id) for i in theirs if i.id is not None)
    if moved:
        session.execute(
            sa.update(Interaction).where(col(Interaction.id).in_(moved)).values(customer_id=lead.id)
        )
    record_event(
        session,
        actor=actor,
        action="detach",
        entity="customer",
        entity_id=customer_id,
        before={"email": address},
        after={"lead_id": lead.id, "interactions": moved},
    )
    return Detached(customer_id, lead.id, address, moved)


def _attached_name(session: Session, customer_id: int, address: str) -> str | None:
    """The name the newest attach of ``address`` to this customer recorded (payloads may be
    encrypted, so they are compared here, not in SQL)."""
    events = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.action == "attach",
            AuditEvent.entity == "customer",
            AuditEvent.entity_id == str(customer_id),
        )
        .order_by(col(AuditEvent.id).desc())
    )
    for event in events:
        after = event.after or {}
        recorded = str(after.get("email") or "").strip().lower()
        if recorded == address and after.get("name"):
            return str(after["name"])[:200]
    return None


def _normalise_contact(kind: ContactKind, value: str) -> str:
    if kind == ContactKind.email:
        return normalise_email(value)
    if kind == ContactKind.phone:
        return normalise_phone(value)
    return normalise_slack_id(value)


def check_owner(session: Session, owner_id: int | None) -> None:
    if owner_id is not None and session.get(User, owner_id) is None:
        raise NotFound(f"There is no user #{owner_id}.", hint="Add the user with `user add` first.")


def create_customer(session: Session, *, customer_in: CustomerCreate, actor: Actor) -> Customer:
    actor.require_write()
    name = clean_text(customer_in.name, field="name", max_length=200, required=True)
    company = clean_text(customer_in.company, field="company", max_length=200)
    email = normalise_email(customer_in.email) if customer_in.email else None
    phone = normalise_phone(customer_in.phone) if customer_in.phone else None
    domain = normalise_domain(customer_in.domain) if customer_in.domain else None
    if domain is None and email:
        domain = company_domain(email)
    check_owner(session, customer_in.owner_id)
    owner_id = customer_in.owner_id if customer_in.owner_id is not None else actor.user_id
    if owner_id is not None and owner_id != actor.user_id:
        actor.require_manager("add a customer in someone else's name")
    tags = sorted({t.strip().lower() for t in customer_in.tags if t.strip()}) or None
    address = clean_address(customer_in.model_dump(include=set(ADDRESS_FIELDS)))
    customer = Customer(
        name=name or "",
        name_key=name_key(name or ""),
        company=company,
        domain=domain,
        status=customer_in.status,
        owner_id=owner_id,
        tags=tags,
        **address,  # type: ignore[arg-type]
    )
    session.add(customer)
    session.flush()
    if email:
        _add_contact(session, customer, ContactKind.email, email, None)
    if phone:
        _add_contact(session, customer, ContactKind.phone, phone, None)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="create",
        entity="customer",
        entity_id=customer.id,
        after={**(snapshot(customer) or {}), "email": email, "phone": phone},
    )
    return customer


def update_customer(
    session: Session, *, customer_id: int, changes: CustomerUpdate, actor: Actor
) -> Customer:
    customer = get_customer(session, customer_id)
    actor.require_write()
    data = changes.model_dump(exclude_unset=True)
    if "owner_id" in data and data["owner_id"] != customer.owner_id:
        # Reps may claim an unowned customer; moving a customer between owners is a manager's call.
        claiming = customer.owner_id is None and data["owner_id"] == actor.user_id
        if not claiming:
            actor.require_manager("change who owns a customer")
    if not data:
        raise CRMError("Nothing to change.", hint="Give at least one field, e.g. status=active.")
    before = snapshot(customer)
    if "name" in data:
        data["name"] = clean_text(data["name"], field="name", max_length=200, required=True)
        data["name_key"] = name_key(data["name"])
    if "company" in data:
        data["company"] = clean_text(data["company"], field="company", max_length=200)
    data |= clean_address({k: v for k, v in data.items() if k in ADDRESS_FIELDS})
    if data.get("domain"):
        data["domain"] = normalise_domain(data["domain"])
    if "owner_id" in data:
        check_owner(session, data["owner_id"])
    if "tags" in data and data["tags"] is not None:
        data["tags"] = sorted({t.strip().lower() for t in data["tags"] if t.strip()}) or None
    customer.sqlmodel_update(data)
    customer.updated_at = utcnow()
    session.add(customer)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="update",
        entity="customer",
        entity_id=customer.id,
        before=before,
        after=snapshot(customer),
    )
    return customer


def add_contact_point(
    session: Session,
    *,
    customer_id: int,
    kind: ContactKind | str,
    value: str,
    actor: Actor,
    label: str | None = None,
) -> ContactPoint:
    customer = get_customer(session, customer_id)
    actor.require_write()
    kind = ContactKind(kind)
    point = _add_contact(session, customer, kind, _normalise_contact(kind, value), label)
    if kind == ContactKind.email and not customer.domain:
        customer.domain = company_domain(point.value)
    customer.updated_at = utcnow()
    session.add(customer)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="add_contact",
        entity="customer",
        entity_id=customer.id,
        after={"kind": kind.value, "value": point.value},
    )
    return point


def replace_contact_point(
    session: Session, *, customer_id: int, kind: ContactKind | str, value: str, actor: Actor
) -> ContactPoint:
    """Make ``value`` the customer's only contact point of this kind (a customer has one phone
    number to call; ``phone=`` replaces it rather than adding a second)."""
    get_customer(session, customer_id)
    actor.require_write()
    kind = ContactKind(kind)
    normalised = _normalise_contact(kind, value)
    old = [
        p for p in contact_points(session, customer_id) if p.kind == kind and p.value != normalised
    ]
    for point in old:
        session.delete(point)
    if old:
        session.flush()
        record_event(
            session,
            actor=actor,
            action="remove_contact",
            entity="customer",
            entity_id=customer_id,
            before={"kind": kind.value, "values": [p.value for p in old]},
        )
    return add_contact_point(
        session, customer_id=customer_id, kind=kind, value=normalised, actor=actor
    )


_CONTACT_POINTS = (
    select(ContactPoint)
    .where(ContactPoint.customer_id == sa.bindparam("customer_id"))
    .order_by(col(ContactPoint.id))
)


def customer_names(session: Session, ids: set[int]) -> dict[int, str]:
    """Names of customers by id (the ones that exist)."""
    if not ids:
        return {}
    c = Customer.__table__.c  # type: ignore[attr-defined]
    stmt = sa.select(c.id, c.name).where(c.id.in_(ids))
    return {cid: name for cid, name in session.execute(stmt)}


def contact_points(session: Session, customer_id: int) -> list[ContactPoint]:
    return list(session.exec(_CONTACT_POINTS, params={"customer_id": customer_id}))


# What a merge moves from the merged-away customer to the kept one, by the name undo uses.
MERGED_RECORDS: dict[str, Any] = {
    "contact_points": ContactPoint,
    "deals": Deal,
    "interactions": Interaction,
    "follow_ups": FollowUp,
    "channel_links": ChannelLink,
}


def merge_customers(session: Session, *, keep_id: int, merge_id: int, actor: Actor) -> Customer:
    """Fold ``merge_id`` into ``keep_id``: contacts, deals, interactions and follow-ups move."""
    return merge_with_record(session, keep_id=keep_id, merge_id=merge_id, actor=actor)[0]


def merge_with_record(
    session: Session, *, keep_id: int, merge_id: int, actor: Actor
) -> tuple[Customer, CustomerMerge]:
    """Merge as :func:`merge_customers` does, and record what moved so the merge can be undone."""
    actor.require_manager("merge customers")
    if keep_id == merge_id:
        raise CRMError("A customer cannot be merged into itself.")
    keep = get_customer(session, keep_id)
    gone = get_customer(session, merge_id)
    before = {"kept": snapshot(keep), "merged": snapshot(gone)}
    moved: dict[str, Any] = {}
    for kind, model in MERGED_RECORDS.items():
        ids = session.execute(
            sa.select(model.id).where(model.customer_id == gone.id).order_by(model.id)
        ).scalars()
        moved[kind] = list(ids)
        session.execute(
            sa.update(model).where(model.customer_id == gone.id).values(customer_id=keep.id)  # type: ignore[attr-defined]
        )
    if keep.external_id is None and gone.external_id is not None:
        # The id is unique: free it on the merged-away row before the kept row takes it.
        moved_external_id, gone.external_id = gone.external_id, None
        session.add(gone)
        session.flush()
        keep.external_id = moved_external_id
    if not format_address(keep):
        for attr in ADDRESS_FIELDS:
            setattr(keep, attr, getattr(gone, attr))
    for attr in ("company", "domain", "owner_id"):
        if getattr(keep, attr) is None and getattr(gone, attr) is not None:
            setattr(keep, attr, getattr(gone, attr))
    tags = sorted(set(keep.tags or []) | set(gone.tags or []))
    keep.tags = tags or None
    if keep.status == CustomerStatus.lead and gone.status != CustomerStatus.lead:
        keep.status = gone.status
    if gone.created_at < keep.created_at:
        keep.created_at = gone.created_at
    keep.updated_at = utcnow()
    session.flush()
    session.delete(gone)
    session.add(keep)
    session.flush()
    after = snapshot(keep)
    record = CustomerMerge(
        kept_id=keep.id,  # type: ignore[arg-type]
        merged_id=merge_id,
        kept_before=before["kept"],
        merged_before=before["merged"],
        moved={**moved, "kept_after": after},
        merged_by=actor.name[:200],
    )
    session.add(record)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="merge",
        entity="customer",
        entity_id=keep.id,
        before=before,
        after={**(after or {}), "merge_id": record.id},
    )
    return keep, record


@dataclass(frozen=True)
class InteractionPreview:
    """What a card shows of an interaction: one line, not the whole mail or thread."""

    id: int
    occurred_at: datetime
    channel: Channel
    direction: Direction
    subject: str | None
    preview: str  # the start of the body


@dataclass(frozen=True)
class OwnerSummary:
    id: int
    name: str


@dataclass(frozen=True)
class ContactSummary:
    id: int
    kind: ContactKind
    value: str


@dataclass(frozen=True)
class DealSummary:
    id: int
    title: str
    stage: str
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class FollowUpSummary:
    id: int
    due_at: datetime
    note: str


PREVIEW_CHARS = 1000  # a line is shown; whitespace is collapsed after the cut


@dataclass
class CustomerCard:
    """What a card shows of a customer: the customer, and a summary of the rest (the records
    themselves are a read away by id)."""

    customer: Customer
    owner: OwnerSummary | None
    contacts: list[ContactSummary]
    open_deals: list[DealSummary]  # by id
    recent_interactions: list[InteractionPreview]  # the newest 5, newest first
    next_follow_up: FollowUpSummary | None
    last_touch_at: datetime | None
    extras: dict[str, object] = field(default_factory=dict)


def _card_statement() -> sa.CompoundSelect:
    """Everything on a card but the customer, in one round trip (cards are read all day).

    One UNION ALL of five parts, each row tagged with its part, in a shared set of columns
    (id, at, text1..text4, amount); the first part casts them to their types, so sealed
    values come back as stored and the caller opens them. The parts come back in no
    particular order: the caller sorts them.
    """
    u, cp, d = User.__table__.c, ContactPoint.__table__.c, Deal.__table__.c  # type: ignore[attr-defined]
    f, i = FollowUp.__table__.c, Interaction.__table__.c  # type: ignore[attr-defined]
    sv = Survey.__table__.c  # type: ignore[attr-defined]
    customer = sa.bindparam("customer_id", type_=sa.Integer)
    shapes = (
        sa.Integer(),
        i.occurred_at.type,
        sa.String(),
        sa.String(),
        sa.String(),
        sa.String(),
        d.amount.type,
    )
    names = ("id", "at", "text1", "text2", "text3", "text4", "amount")

    def part(tag: str, *columns: Any, where: Any, order: Any = (), limit: int | None = None) -> Any:
        padded = [*columns, *[None] * (len(names) - len(columns))]
        select = sa.select(
            sa.literal(tag, sa.String()).label("part"),
            *(
                (sa.cast(sa.null(), shape) if c is None else c).label(name)
                for c, shape, name in zip(padded, shapes, names, strict=True)
            ),
        ).where(*where)
        return select.order_by(*order).limit(limit).subquery().select() if limit else select

    return sa.union_all(
        part("owner", u.id, None, u.name, where=[u.id == sa.bindparam("owner_id")]),
        part("contact", cp.id, None, cp.kind, cp.value, where=[cp.customer_id == customer]),
        part(
            "deal",
            d.id,
            None,
            d.title,
            d.stage,
            d.currency,
            None,
            d.amount,
            where=[d.customer_id == customer, d.status == DealStatus.open],
        ),
        part(
            # (The body is read whole: a sealed body cannot be cut in SQL.)
            "recent",
            i.id,
            i.occurred_at,
            i.channel,
            i.direction,
            i.subject,
            i.body,
            where=[i.customer_id == customer, i.deleted_at.is_(None)],
            order=[i.occurred_at.desc(), i.id.desc()],
            limit=5,
        ),
        part(
            "follow_up",
            f.id,
            f.due_at,
            f.note,
            where=[
                f.customer_id == customer,
                f.status.in_([FollowUpStatus.open, FollowUpStatus.snoozed]),
            ],
            order=[f.due_at, f.id],
            limit=1,
        ),
        part(
            # The latest two survey ratings: the score and its trend.
            "csat",
            sv.rating,
            sv.answered_at,
            where=[sv.customer_id == customer, sv.rating.is_not(None)],
            order=[sv.answered_at.desc(), sv.id.desc()],
            limit=2,
        ),
    )


_CARD = _card_statement()


def customer_card(session: Session, customer_id: int) -> CustomerCard:
    customer = get_customer(session, customer_id)
    rows = session.execute(_CARD, {"customer_id": customer_id, "owner_id": customer.owner_id})
    owner: OwnerSummary | None = None
    contacts: list[ContactSummary] = []
    deals: list[DealSummary] = []
    recent: list[InteractionPreview] = []
    follow_up: FollowUpSummary | None = None
    ratings: list[tuple[datetime, int]] = []
    for part, id_, at, t1, t2, t3, t4, amount in rows:
        if part == "csat":
            ratings.append((at, id_))
        elif part == "recent":
            preview = (open_text(t4) or "")[:PREVIEW_CHARS]
            recent.append(
                InteractionPreview(id_, at, Channel(t1), Direction(t2), open_text(t3), preview)
            )
        elif part == "contact":
            contacts.append(ContactSummary(id_, ContactKind(t1), open_text(t2) or ""))
        elif part == "deal":
            deals.append(DealSummary(id_, t1, t2, amount, t3))
        elif part == "owner":
            owner = OwnerSummary(id_, t1)
        else:
            follow_up = FollowUpSummary(id_, at, open_text(t1) or "")
    contacts.sort(key=lambda c: c.id)
    deals.sort(key=lambda d: d.id)
    recent.sort(key=lambda r: (r.occurred_at, r.id), reverse=True)
    ratings.sort(reverse=True)
    rated = (
        Satisfaction(ratings[0][1], ratings[1][1] if len(ratings) > 1 else None, ratings[0][0])
        if ratings
        else None
    )
    return CustomerCard(
        customer=customer,
        owner=owner,
        contacts=contacts,
        open_deals=deals,
        recent_interactions=recent,
        next_follow_up=follow_up,
        last_touch_at=recent[0].occurred_at if recent else None,
        extras={"satisfaction": rated} if rated is not None else {},
    )


_customers_table = Customer.__table__  # type: ignore[attr-defined]
_contacts_table = ContactPoint.__table__  # type: ignore[attr-defined]


def create_leads(
    session: Session, *, people: Sequence[tuple[str, str]], actor: Actor
) -> dict[str, int]:
    """Create a lead for each (name, email) with a few set-based inserts; email -> new id.

    What ``create_customer`` does for one lead (the same checks, the contact point, one audit
    event each), for the many unknown senders a batch of mail can bring. The emails must be
    no one's contact yet; one that is (another replica was quicker) breaks the unique contact
    constraint and nothing of the batch is written.
    """
    actor.require_write()
    rows: list[dict[str, Any]] = []
    emails: list[str] = []
    now = utcnow()
    for raw_name, raw_email in people:
        email = normalise_email(raw_email)
        if email in emails:
            continue
        name = clean_text(raw_name, field="name", max_length=200, required=True) or email
        emails.append(email)
        rows.append({
            "name": name, "name_key": name_key(name), "company": None,
            "domain": company_domain(email), "status": CustomerStatus.lead,
            "owner_id": actor.user_id, "external_id": None, "tags": None,
            "created_at": now, "updated_at": now,
        })
    if not rows:
        return {}
    ids = session.execute(
        sa.insert(_customers_table).returning(_customers_table.c.id, sort_by_parameter_order=True),
        rows,
    ).scalars().all()
    session.execute(sa.insert(_contacts_table), [
        {"customer_id": cid, "kind": ContactKind.email, "value": email,
         "digest": contact_digest(session, ContactKind.email, email), "label": None,
         "created_at": now}
        for cid, email in zip(ids, emails, strict=True)
    ])
    # One chained, set-based write of the audit events (see crm.services.audit).
    record_events(session, [
        {"at": now, "actor": actor.name[:200], "action": "create", "entity": "customer",
         "entity_id": str(cid), "before": None,
         "after": _jsonable({"id": cid, **row, "email": email, "phone": None})}
        for cid, row, email in zip(ids, rows, emails, strict=True)
    ])
    return dict(zip(emails, ids, strict=True))
