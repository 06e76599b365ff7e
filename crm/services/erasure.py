"""Erasure on request (GDPR article 17) and export on request (articles 15 and 20,
``export_customer``).

``forget_customer`` removes a person's personal data from every table in one transaction:

- contact points, follow-ups, Slack channel links, analytics rows (segments, churn scores,
  findings) and interactions are deleted; purchases are kept as amounts and dates only, deals
  as amounts and stages with a neutral title (accounting needs them, not the person);
- the customer row is deleted when nothing is kept, else renamed ``Erased customer #id``
  with company, domain, tags and external id cleared;
- quarantined raw mail and digest history rows that name them are dropped;
- audit events about their records, or whose payload names them, keep their frame (when,
  who, what) but their payload is replaced by its digest: the hash chain still verifies, and
  the data is gone. The erasure's own event (the tombstone) says who erased what kinds of
  records, when and why, and lists the events it scrubbed;
- their email addresses and phone numbers are remembered as keyed hashes (HMAC-SHA256) only,
  so that mail from them does not create the person again (``CRM_FORGET_BLOCKS_CAPTURE``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm.models import (
    AnalyticsRun,
    AuditEvent,
    CampaignMember,
    CampaignOptOut,
    Channel,
    ChannelLink,
    ChurnScore,
    ContactKind,
    ContactPoint,
    Customer,
    CustomerMerge,
    CustomerSegment,
    CustomerTopics,
    CustomerValue,
    Deal,
    DealStageChange,
    DigestRun,
    DuplicateDismissal,
    Finding,
    FollowUp,
    ForgottenContact,
    Interaction,
    ProductSuggestion,
    QuarantinedMessage,
    Survey,
    TopicTerm,
    utcnow,
)
from crm.models.base import SEAL_PREFIX
from crm.services import audit
from crm.services.actor import Actor
from crm.services.customers import find_customers, get_customer
from crm.services.errors import CRMError
from crm.services.keys import contact_digests as keys_contact_digests
from crm.services.keys import store_key
from crm.services.normalise import name_key, normalise_email, normalise_phone

_events = AuditEvent.__table__  # type: ignore[attr-defined]
# Identifiers shorter than this are not searched for in other records (too many false hits).
MIN_TERM = 4


# ---------------------------------------------------------------- keyed hashes


def hashing_key(session: Session, configured: Any = None) -> bytes:
    """The HMAC key: ``CRM_HMAC_KEY`` when set, else a random key the store keeps (the one the
    contact lookups use, see crm.services.keys)."""
    if configured is not None:
        value = (
            configured.get_secret_value() if hasattr(configured, "get_secret_value") else configured
        )
        if value:
            return str(value).encode("utf-8")
    return store_key(session)


def _normal(kind: ContactKind, value: str) -> str:
    return (
        normalise_email(value)
        if kind == ContactKind.email
        else (normalise_phone(value) if kind == ContactKind.phone else value.strip())
    )


def contact_digest(key: bytes, kind: ContactKind, value: str) -> str:
    return hmac.new(
        key, f"{kind.value}:{_normal(kind, value)}".encode(), hashlib.sha256
    ).hexdigest()


def forgotten_emails(session: Session, *, key: bytes, emails: Iterable[str]) -> set[str]:
    """Which of ``emails`` belong to people erased on request (compared as keyed hashes)."""
    by_digest = {contact_digest(key, ContactKind.email, e): e.lower() for e in emails if e}
    if not by_digest:
        return set()
    rows = session.exec(
        select(ForgottenContact.digest).where(
            ForgottenContact.kind == ContactKind.email,
            col(ForgottenContact.digest).in_(list(by_digest)),
        )
    )
    return {by_digest[d] for d in rows}


# ---------------------------------------------------------------- forget


@dataclass
class ErasureResult:
    customer_id: int
    customer: str  # "deleted" or "anonymised"
    removed: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    scrubbed_events: int = 0
    remembered_contacts: int = 0


def resolve_exactly(session: Session, ref: str) -> Customer:
    """The customer an erasure is about, named exactly (``#id`` or an email): never the best
    guess of a fuzzy search, since erasing cannot be undone."""
    matches = find_customers(session, ref, limit=1)
    if not matches or matches[0].matched_on not in ("id", "email"):
        raise CRMError(
            f"No customer has the id or email {ref!r}.",
            hint="Name the customer exactly for an erasure: #id or an email address.",
        )
    return matches[0].customer


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _text_forms(term: str) -> set[str]:
    """The term as written, and as JSON stores it (non-ASCII escaped)."""
    return {term, json.dumps(term)[1:-1]}


def _mentions(column: Any, terms: Iterable[str]) -> sa.ColumnElement[bool]:
    text = sa.cast(column, sa.Text)
    return sa.or_(*(text.ilike(_like(form), escape="\\") for t in terms for form in _text_forms(t)))


# Ids named in one statement when events found earlier are read again.
_IDS_PER_READ = 10_000


def _sealed_events_mentioning(
    session: Session,
    terms: Iterable[str],
    *,
    after_seq: int | None = None,
    up_to_seq: int | None = None,
    ids: Sequence[int] | None = None,
) -> list[Any]:
    """Audit events whose payload is stored encrypted and names one of ``terms`` (read and
    decrypted in batches: an encrypted payload is opaque to SQL); only those after, up to or
    with the given ids where those are given."""
    needles = {form.lower() for t in terms for form in _text_forms(t)}
    sealed = sa.or_(
        *(
            sa.type_coerce(c, sa.Text).like(f"{SEAL_PREFIX}%")
            for c in (_events.c.before, _events.c.after)
        )
    )
    statement = sa.select(_events.c.id, _events.c.seq, _events.c.before, _events.c.after).where(
        sealed, _events.c.action != audit.ERASURE_ACTION
    )
    if after_seq is not None:
        statement = statement.where(sa.or_(_events.c.seq > after_seq, _events.c.seq.is_(None)))
    if up_to_seq is not None:
        statement = statement.where(_events.c.seq <= up_to_seq)
    if ids is not None:
        statement = statement.where(_events.c.id.in_(list(ids)))
    found = []
    for row in session.execute(statement.execution_options(yield_per=2_000)):
        text = json.dumps([row.before, row.after], ensure_ascii=False, default=str).lower()
        if any(n in text for n in needles):
            found.append(row)
    return found


def _without_terms(text: str, terms: Iterable[str]) -> str:
    for term in sorted(terms, key=len, reverse=True):
        text = re.sub(re.escape(term), "[erased]", text, flags=re.IGNORECASE)
    return text


def _changed(session: Session, statement: Any) -> int:
    """Run an UPDATE or DELETE; the rows it changed."""
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def _delete(session: Session, model: Any, *where: Any) -> int:
    return int(session.execute(sa.delete(model).where(*where)).rowcount or 0)  # type: ignore[attr-defined]


def _forget_topics(session: Session, customer_id: int) -> int:
    """Their running term counts and keywords go, and their share of each term's customer count."""
    row = session.get(CustomerTopics, customer_id)
    if row is None:
        return 0
    terms = sorted(row.counts or {})
    if terms:
        session.execute(
            sa.update(TopicTerm)
            .where(col(TopicTerm.term).in_(terms))
            .values(customers=TopicTerm.customers - 1)
        )
        session.execute(sa.delete(TopicTerm).where(col(TopicTerm.customers) <= 0))
    return _delete(session, CustomerTopics, col(CustomerTopics.customer_id) == customer_id)


def _run_rows(model: Any, session: Session, customer_id: int) -> tuple[Any, ...]:
    """The customer's rows of a per-run analytics table, by (run, customer): the tables are
    indexed that way only (a second index by customer made every refresh's store slower),
    and there are few runs."""
    runs = list(session.exec(select(AnalyticsRun.id)))
    return (col(model.run_id).in_(runs), col(model.customer_id) == customer_id)


def forget_customer(
    session: Session,
    *,
    actor: Actor,
    customer_id: int,
    reason: str,
    key: bytes,
    remember_contacts: bool = True,
) -> ErasureResult:
    """Erase a person's personal data everywhere (see the module's description); admins only."""
    actor.require_admin("erase a customer's personal data")
    reason = " ".join((reason or "").split())
    if not reason:
        raise CRMError("Say why the data is erased.", hint='Add --reason "request by email".')

    def person() -> tuple[Customer, list[ContactPoint], set[str]]:
        customer = get_customer(session, customer_id)
        points = list(
            session.exec(select(ContactPoint).where(ContactPoint.customer_id == customer_id))
        )
        terms = {t for t in [customer.name, customer.external_id, *(p.value for p in points)] if t}
        return customer, points, {t for t in terms if len(t) >= MIN_TERM}

    # Encrypted audit payloads are read and decrypted to find those naming the person: a scan
    # of the whole trail. Where other writers can run meanwhile (PostgreSQL), it is done before
    # the chain's lock is taken, up to the head committed then; under the lock only the events
    # after that head, and the ones found (as they are now), are read again.
    scanned: tuple[set[str], int, list[int]] | None = None
    if session.get_bind().dialect.name == "postgresql":
        _, _, early_terms = person()
        head = audit.head_seq(session)
        found = (
            _sealed_events_mentioning(session, early_terms, up_to_seq=head) if early_terms else []
        )
        scanned = (early_terms, head, [row.id for row in found])
    # The lock first, so that an analytics run being stored finishes before these deletes (they
    # then see its rows) or starts after this commits (it then drops them): see
    # crm.models.analytics.
    audit.lock_chain(session)
    session.expire_all()  # read the person again as they are now, under the lock
    customer, points, terms = person()
    result = ErasureResult(customer_id=customer_id, customer="anonymised")

    def ids(model: Any) -> list[int]:
        return list(session.exec(select(model.id).where(model.customer_id == customer_id)))

    interaction_ids = ids(Interaction)
    deal_ids = ids(Deal)
    follow_up_ids = ids(FollowUp)
    link_ids = ids(ChannelLink)

    # Audit payloads first, while the records still name them.
    records = [
        ("customer", [customer_id]),
        ("interaction", interaction_ids),
        ("deal", deal_ids),
        ("follow_up", follow_up_ids),
        ("channel_link", link_ids),
    ]
    about = sa.or_(
        *(
            sa.and_(_events.c.entity == entity, _events.c.entity_id.in_([str(i) for i in id_list]))
            for entity, id_list in records
            if id_list
        ),
        *([_mentions(_events.c.before, terms), _mentions(_events.c.after, terms)] if terms else []),
    )
    candidates = session.execute(
        sa.select(_events.c.id, _events.c.seq, _events.c.before, _events.c.after).where(
            about, _events.c.action != audit.ERASURE_ACTION
        )
    ).all()
    if terms:  # payloads stored encrypted cannot be searched in SQL: they are read here
        if scanned is not None and scanned[0] == terms:
            _, head, found_ids = scanned
            sealed = _sealed_events_mentioning(session, terms, after_seq=head)
            for at in range(0, len(found_ids), _IDS_PER_READ):
                chunk = found_ids[at : at + _IDS_PER_READ]
                sealed += _sealed_events_mentioning(session, terms, ids=chunk)
        else:
            sealed = _sealed_events_mentioning(session, terms)
        seen = {row.id for row in candidates}
        candidates += [r for r in sealed if r.id not in seen]
    scrubbed_seqs: list[int] = []
    updates = []
    for row in candidates:
        if audit.erased_payload(row.before, row.after) is not None:
            continue
        digest = audit.payload_digest(row.before, row.after)
        updates.append({"event_id": row.id, "after": {audit.ERASED_KEY: digest}})
        if row.seq is not None:
            scrubbed_seqs.append(int(row.seq))
    if updates:
        session.execute(
            sa.update(_events)
            .where(_events.c.id == sa.bindparam("event_id"))
            .values(before=None, after=sa.bindparam("after")),
            updates,
        )
    result.scrubbed_events = len(updates)

    # Records that are theirs alone.
    removed = result.removed
    removed["contact_points"] = _delete(
        session, ContactPoint, col(ContactPoint.customer_id) == customer_id
    )
    removed["follow_ups"] = _delete(session, FollowUp, col(FollowUp.customer_id) == customer_id)
    removed["channel_links"] = _delete(
        session, ChannelLink, col(ChannelLink.customer_id) == customer_id
    )
    removed["segments"] = _delete(
        session, CustomerSegment, *_run_rows(CustomerSegment, session, customer_id)
    )
    removed["churn_scores"] = _delete(
        session, ChurnScore, *_run_rows(ChurnScore, session, customer_id)
    )
    finding_about = col(Finding.customer_id) == customer_id
    if deal_ids:
        finding_about = sa.or_(finding_about, col(Finding.deal_id).in_(deal_ids))
    removed["findings"] = _delete(session, Finding, finding_about)
    removed["values"] = _delete(
        session, CustomerValue, *_run_rows(CustomerValue, session, customer_id)
    )
    removed["product_suggestions"] = _delete(
        session, ProductSuggestion, *_run_rows(ProductSuggestion, session, customer_id)
    )
    removed["surveys"] = _delete(session, Survey, col(Survey.customer_id) == customer_id)
    removed["topics"] = _forget_topics(session, customer_id)
    # Merges they were part of keep both customers as they were (to undo them): an erasure
    # is final, so those records go, and with them the way back.
    removed["merge_records"] = _delete(
        session,
        CustomerMerge,
        sa.or_(
            col(CustomerMerge.kept_id) == customer_id, col(CustomerMerge.merged_id) == customer_id
        ),
    )
    removed["duplicate_answers"] = _delete(
        session,
        DuplicateDismissal,
        sa.or_(
            col(DuplicateDismissal.low_id) == customer_id,
            col(DuplicateDismissal.high_id) == customer_id,
        ),
    )
    removed["interactions"] = _delete(
        session,
        Interaction,
        col(Interaction.customer_id) == customer_id,
        col(Interaction.channel) != Channel.purchase,
    )
    # Purchases and deals stay for the accounts: amounts, dates and stages, nothing personal.
    kept = result.kept
    kept["purchases"] = _changed(
        session,
        (
            sa.update(Interaction)
            .where(col(Interaction.customer_id) == customer_id)
            .values(
                subject=None,
                body="",
                author=None,
                meta=None,
                external_id=None,
                thread_key=None,
                updated_at=utcnow(),
            )
        ),
    )
    for deal_id in deal_ids:
        session.execute(
            sa.update(Deal)
            .where(col(Deal.id) == deal_id)
            .values(title=f"Deal #{deal_id}", lost_reason=None, updated_at=utcnow())
        )
    kept["deals"] = len(deal_ids)  # their stage history (when, moved by staff) stays as it is

    # Campaigns keep who was in which arm (their reports count them), not the address.
    kept["campaign_memberships"] = _changed(
        session,
        sa.update(CampaignMember)
        .where(col(CampaignMember.customer_id) == customer_id)
        .values(email=None),
    )
    emails = [p.value for p in points if p.kind == ContactKind.email]
    if emails:
        removed["campaign_opt_outs"] = _delete(
            session,
            CampaignOptOut,
            col(CampaignOptOut.digest).in_(
                list(keys_contact_digests(session, ContactKind.email, emails))
            ),
        )

    # Rows elsewhere that name them: raw mail in quarantine, digest memories.
    removed["quarantined_mail"] = _drop_quarantined(session, terms)
    if terms:
        removed["digest_history"] = _changed(
            session,
            sa.update(DigestRun).where(_mentions(DigestRun.meta, terms)).values(meta=None),
        )

    if remember_contacts:
        for point in points:
            if point.kind in (ContactKind.email, ContactKind.phone):
                digest = contact_digest(key, point.kind, point.value)
                known = session.exec(
                    select(ForgottenContact.id).where(
                        ForgottenContact.kind == point.kind, ForgottenContact.digest == digest
                    )
                ).first()
                if known is None:
                    session.add(ForgottenContact(kind=point.kind, digest=digest))
                result.remembered_contacts += 1

    session.flush()
    session.expunge_all()  # the ORM's copies of deleted rows must not be written back
    if kept["deals"] or kept["purchases"]:
        label = f"Erased customer #{customer_id}"
        session.execute(
            sa.update(Customer)
            .where(col(Customer.id) == customer_id)
            .values(
                name=label,
                name_key=name_key(label),
                company=None,
                domain=None,
                tags=None,
                external_id=None,
                updated_at=utcnow(),
            )
        )
    else:
        _delete(session, Customer, col(Customer.id) == customer_id)
        result.customer = "deleted"

    audit.record_event(
        session,
        actor=actor,
        action=audit.ERASURE_ACTION,
        entity="customer",
        entity_id=customer_id,
        after={
            "reason": _without_terms(reason, terms),
            "customer": result.customer,
            "removed": {k: v for k, v in removed.items() if v},
            "kept": {k: v for k, v in kept.items() if v},
            "remembered_contacts": result.remembered_contacts,
            "scrubbed_events": sorted(scrubbed_seqs),
        },
    )
    _forget_search_index()
    return result


def _drop_quarantined(session: Session, terms: set[str]) -> int:
    if not terms:
        return 0
    needles = [t.lower().encode("utf-8") for t in terms]
    doomed = []
    for qid, raw in session.execute(sa.select(QuarantinedMessage.id, QuarantinedMessage.raw)):  # type: ignore[call-overload]
        text = bytes(raw or b"").lower()
        if any(n in text for n in needles):
            doomed.append(qid)
    if doomed:
        _delete(session, QuarantinedMessage, col(QuarantinedMessage.id).in_(doomed))
    return len(doomed)


def _forget_search_index() -> None:
    # The fuzzy-name index of this process; other processes rebuild theirs in full regularly.
    from crm.services.search import forget_indexes

    forget_indexes()


# ---------------------------------------------------------------- export


def export_customer(session: Session, *, actor: Actor, customer_id: int) -> dict[str, Any]:
    """Everything held about a person (article 15 and 20): their record, contact points,
    deals with their stage history, interactions whole, follow-ups, Slack channel links,
    campaign memberships, surveys, merges they were part of, analytics results and the audit
    events about their records. Managers and admins."""
    actor.require_manager("export everything held about a customer")
    customer = get_customer(session, customer_id)

    def rows(model: Any, *where: Any, order: Any = None) -> list[dict[str, Any]]:
        query = select(model).where(*where).order_by(order if order is not None else model.id)
        return [audit.snapshot(r) or {} for r in session.exec(query)]

    deals = rows(Deal, col(Deal.customer_id) == customer_id)
    deal_ids = [d["id"] for d in deals]
    interactions = rows(
        Interaction, col(Interaction.customer_id) == customer_id, order=Interaction.occurred_at
    )
    follow_ups = rows(FollowUp, col(FollowUp.customer_id) == customer_id)
    links = rows(ChannelLink, col(ChannelLink.customer_id) == customer_id)
    records = [
        ("customer", [customer_id]),
        ("interaction", [i["id"] for i in interactions]),
        ("deal", deal_ids),
        ("follow_up", [f["id"] for f in follow_ups]),
        ("channel_link", [c["id"] for c in links]),
    ]
    events = rows(
        AuditEvent,
        sa.or_(
            *(
                sa.and_(
                    col(AuditEvent.entity) == entity,
                    col(AuditEvent.entity_id).in_([str(i) for i in id_list]),
                )
                for entity, id_list in records
                if id_list
            )
        ),
    )
    finding_about = col(Finding.customer_id) == customer_id
    if deal_ids:
        finding_about = sa.or_(finding_about, col(Finding.deal_id).in_(deal_ids))
    return {
        "exported_at": utcnow().isoformat(),
        "customer": audit.snapshot(customer, exclude=("name_key",)),
        "contact_points": rows(ContactPoint, col(ContactPoint.customer_id) == customer_id),
        "deals": deals,
        "deal_stage_changes": rows(DealStageChange, col(DealStageChange.deal_id).in_(deal_ids))
        if deal_ids
        else [],
        "interactions": interactions,
        "follow_ups": follow_ups,
        "channel_links": links,
        "campaigns": rows(CampaignMember, col(CampaignMember.customer_id) == customer_id),
        "surveys": rows(Survey, col(Survey.customer_id) == customer_id),
        "merges": rows(
            CustomerMerge,
            sa.or_(
                col(CustomerMerge.kept_id) == customer_id,
                col(CustomerMerge.merged_id) == customer_id,
            ),
        ),
        "analytics": {
            "segments": rows(CustomerSegment, *_run_rows(CustomerSegment, session, customer_id)),
            "churn_scores": rows(ChurnScore, *_run_rows(ChurnScore, session, customer_id)),
            "values": rows(CustomerValue, *_run_rows(CustomerValue, session, customer_id)),
            "product_suggestions": rows(
                ProductSuggestion, *_run_rows(ProductSuggestion, session, customer_id)
            ),
            "findings": rows(Finding, finding_about),
            "topics": rows(
                CustomerTopics,
                col(CustomerTopics.customer_id) == customer_id,
                order=CustomerTopics.customer_id,
            ),
        },
        "audit_events": [
            {k: v for k, v in e.items() if k not in ("digest", "chain")} for e in events
        ],
    }
