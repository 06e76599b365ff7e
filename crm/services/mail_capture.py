"""Mail capture: store incoming mail as interactions with the right customer, exactly once.

Transports (the IMAP poller, ``crmbot ingest``) parse messages and hand over neutral
:class:`IncomingMail` objects; nothing here knows about IMAP or MIME.

- Who the mail is about: the original sender of a forward (never the staff member who
  forwarded it), else the sender; mail from our own staff to a customer (a BCC to the CRM
  inbox) is an outbound interaction matched on its recipients.
- Matching: a contact point with that address, then the company domain (never a free-mail
  domain), then the policy for unknown senders (create a lead, ignore, or quarantine).
- Idempotent: one interaction per Message-ID (or per content hash when the Message-ID is
  missing), whichever transport or file it came from: the IMAP poller, a folder, the same
  message as a single file. The same mail again is reported as a duplicate and changes nothing.
- Threading: ``thread_key`` follows In-Reply-To and References to mail already stored, else
  the thread's root Message-ID. The subject never joins mails into a thread.
- Unusable mail is quarantined raw with the reason; one bad message never stops a batch.
  Ignored mail (automatic replies, list mail, unknown senders under the ignore policy) is
  recorded the same way, so "where did that mail go?" always has an answer.
- List and role mail (List-Id, a digest, noreply@, postmaster@, ...) creates no lead and is
  not matched by company domain unless the policy allows it.

Batches are stored with a few set-based queries; when anything in the fast path fails the
batch is redone message by message, each in its own savepoint.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from crm.models import (
    Channel,
    ContactKind,
    ContactPoint,
    Customer,
    CustomerCreate,
    CustomerStatus,
    Direction,
    ForgottenContact,
    Interaction,
    MailboxState,
    QuarantinedMessage,
    utcnow,
)
from crm.services.actor import Actor
from crm.services.audit import record_event, record_events
from crm.services.customers import attach_email, create_customer, create_leads
from crm.services.erasure import forgotten_emails, hashing_key
from crm.services.errors import CRMError
from crm.services.keys import contact_digest, contact_digests
from crm.services.normalise import (
    FREE_MAIL_DOMAINS,
    is_email,
    name_key,
    normalise_email,
    normalise_phone,
    role_address_reason,
)
from crm.services.retention import holds_raw_mail

logger = logging.getLogger(__name__)

_interactions = Interaction.__table__  # type: ignore[attr-defined]

MAX_BODY_CHARS = 100_000
MAX_QUOTED_CHARS = 20_000
MAX_REFERENCES = 30
MAX_LISTED = 50
# The ``source`` of every interaction and set-aside record made from mail: the Message-ID key
# is unique across transports, so the database constraint on (source, external_id) guards it
# for all of them. Where a message arrived is kept in the interaction's meta (received_via,
# origin) and in the set-aside record's origin.
MAIL_SOURCE = "mail"
# A Date header further ahead than this is wrong (bad clock, spam); the receive time is used.
_FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class MailAddress:
    name: str
    address: str  # lower-case; "" when only a name is known

    def display(self) -> str:
        if self.name and self.address:
            return f"{self.name} <{self.address}>"
        return self.address or self.name


@dataclass(frozen=True)
class MailAttachment:
    name: str
    content_type: str
    size: int


# A message as the CRM sees it: already parsed, no transport details.
@dataclass
class IncomingMail:
    source: str  # how it arrived: "imap:<mailbox>" or "ingest:<name>"
    content_hash: str  # identifies the message when it has no Message-ID
    raw: bytes = b""  # kept only when the message ends up in quarantine
    raw_size: int = 0
    message_id: str | None = None
    from_: MailAddress | None = None
    original_sender: MailAddress | None = None  # the customer behind a forward
    forwarded: bool = False
    forwarded_by: MailAddress | None = None
    to: list[MailAddress] = field(default_factory=list)
    cc: list[MailAddress] = field(default_factory=list)
    subject: str = ""
    new_text: str = ""
    quoted_text: str = ""
    signature: str = ""
    forward_note: str = ""
    date: datetime | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    auto_reply: bool = False
    auto_reason: str = ""  # what made it automatic (an auto-reply header, a delivery report)
    list_mail: str = ""  # what made it list or bulk mail (List-Id, a digest, ...)
    attachments: list[MailAttachment] = field(default_factory=list)
    truncated: bool = False
    problems: list[str] = field(default_factory=list)
    # Set by the parser when the message cannot be used at all (e.g. no headers).
    unusable_reason: str | None = None
    # Where the transport found it: a file path, "<mbox>#3", "<mailbox> UID 42".
    origin: str = ""

    @property
    def external_id(self) -> str:
        """The idempotency key, the same whichever transport or file the message came from."""
        if self.message_id:
            mid = _no_nul(self.message_id).strip()
            if mid and len(mid) <= 500:
                return mid
            if mid:
                return "mid-sha256:" + hashlib.sha256(mid.encode("utf-8", "replace")).hexdigest()
        return "sha256:" + self.content_hash

    @property
    def sender(self) -> MailAddress | None:
        return self.original_sender if self.forwarded else self.from_


class CaptureOutcome(StrEnum):
    stored = "stored"
    duplicate = "duplicate"
    quarantined = "quarantined"
    ignored = "ignored"


@dataclass(frozen=True)
class CaptureResult:
    outcome: CaptureOutcome
    external_id: str
    interaction_id: int | None = None
    customer_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CapturePolicy:
    internal_domains: tuple[str, ...] = ()
    unknown_sender: str = "create_lead"  # create_lead | ignore | quarantine
    # Addresses of the CRM's own mailboxes: never a customer even outside internal_domains.
    own_addresses: frozenset[str] = frozenset()
    max_body_chars: int = MAX_BODY_CHARS
    # List and role mail may create leads (and match by company domain) like any other mail.
    list_leads: bool = False
    # Mail from people erased on request is dropped (their addresses are kept as keyed hashes).
    skip_forgotten: bool = True
    forget_key: str | None = None  # CRM_HMAC_KEY; None: the store's own key

    def __post_init__(self) -> None:
        if self.unknown_sender not in ("create_lead", "ignore", "quarantine"):
            raise CRMError(
                f"{self.unknown_sender!r} is not a policy for unknown senders.",
                hint="Use create_lead, ignore or quarantine.",
            )

    @classmethod
    def from_settings(cls, settings: Any, own_addresses: Iterable[str] = ()) -> CapturePolicy:
        return cls(
            internal_domains=tuple(settings.internal_domains),
            unknown_sender=settings.mail_unknown_sender,
            own_addresses=frozenset(a.lower() for a in own_addresses if a),
            max_body_chars=getattr(settings, "mail_max_body_chars", MAX_BODY_CHARS),
            list_leads=getattr(settings, "mail_list_leads", False),
            skip_forgotten=getattr(settings, "forget_blocks_capture", True),
            forget_key=_secret(getattr(settings, "hmac_key", None)),
        )

    def is_internal(self, address: str) -> bool:
        if not address:
            return False
        if address.lower() in self.own_addresses:
            return True
        domain = address.rsplit("@", 1)[-1].lower().strip(".")
        return any(domain == d or domain.endswith("." + d) for d in self.internal_domains)


@dataclass
class CaptureSummary:
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0
    ignored: int = 0

    def add(self, results: Iterable[CaptureResult]) -> None:
        for r in results:
            setattr(self, r.outcome.value, getattr(self, r.outcome.value) + 1)

    @property
    def total(self) -> int:
        return self.stored + self.duplicate + self.quarantined + self.ignored

    def as_dict(self) -> dict[str, int]:
        return {
            "stored": self.stored,
            "duplicate": self.duplicate,
            "quarantined": self.quarantined,
            "ignored": self.ignored,
        }


# --------------------------------------------------------------------------- helpers


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; mail sometimes carries one.
    return value.replace("\x00", "") if "\x00" in value else value


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    text = _no_nul(value)
    return text[:limit]


def _addr_list(addresses: Sequence[MailAddress]) -> list[str]:
    return [_no_nul(a.display())[:320] for a in addresses[:MAX_LISTED]]


def _domain_candidates(address: str) -> list[str]:
    """``a@eu.mail.acme.com`` -> eu.mail.acme.com, mail.acme.com, acme.com (never free mail)."""
    domain = address.rsplit("@", 1)[-1].lower().strip(".")
    if not domain or domain in FREE_MAIL_DOMAINS:
        return []
    labels = domain.split(".")
    out = []
    for i in range(0, max(1, len(labels) - 1)):
        candidate = ".".join(labels[i:])
        if candidate.count(".") < 1 or candidate in FREE_MAIL_DOMAINS:
            break
        out.append(candidate)
    return out


def _forwarded_by_customer(mail: IncomingMail, policy: CapturePolicy) -> bool:
    """A forward sent by someone outside our domains (only knowable when they are set)."""
    by = mail.forwarded_by
    return bool(
        mail.forwarded
        and by is not None
        and by.address
        and policy.internal_domains
        and not policy.is_internal(by.address)
    )


def _thread_root(mail: IncomingMail) -> str:
    if mail.references:
        return mail.references[0]
    if mail.in_reply_to:
        return mail.in_reply_to
    return mail.external_id


def _parents(mail: IncomingMail) -> list[str]:
    """Message-IDs this mail answers, nearest first."""
    out: list[str] = []
    if mail.in_reply_to:
        out.append(mail.in_reply_to)
    out.extend(reversed(mail.references[-MAX_REFERENCES:]))
    seen: set[str] = set()
    return [m for m in out if m and not (m in seen or seen.add(m))]  # type: ignore[func-returns-value]


@dataclass
class _Plan:
    """What one mail will become, worked out before writing."""

    mail: IncomingMail
    key: str
    direction: Direction | None = None
    party: MailAddress | None = None  # the customer-side address
    customer_id: int | None = None
    matched_on: str | None = None
    result: CaptureResult | None = None  # decided already (duplicate, ignored, quarantine)
    quarantine_reason: str | None = None
    # Why this is list or role mail, which creates no lead by default.
    bulk: str | None = None
    # Mail from a person erased on request: ignored without the trace ignored mail leaves
    # (the trace keeps the raw message).
    no_trace: bool = False


class _Lookups:
    """Set-based lookups for a batch, so a batch costs a few queries, not a few per mail."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.by_email: dict[str, int] = {}
        self.by_domain: dict[str, int] = {}
        self.domain_counts: dict[str, int] = {}
        self.threads: dict[str, str] = {}
        # Unknown senders the batch makes leads of; placeholder id -n is new_leads[n - 1].
        self.new_leads: list[MailAddress] = []

    def load(self, emails: set[str], domains: set[str], message_ids: set[str]) -> None:
        s = self.session
        for chunk in _chunks(sorted(emails), 500):
            by_digest = contact_digests(s, ContactKind.email, chunk)
            rows = s.exec(
                select(ContactPoint.digest, ContactPoint.customer_id).where(
                    ContactPoint.kind == ContactKind.email,
                    col(ContactPoint.digest).in_(list(by_digest)),
                )
            )
            self.by_email.update({by_digest[d]: cid for d, cid in rows})
        for chunk in _chunks(sorted(domains), 500):
            domain_rows = s.exec(
                select(Customer.domain, Customer.id)
                .where(col(Customer.domain).in_(chunk))
                .order_by(col(Customer.id))
            )
            for domain, cid in domain_rows:
                if domain is None or cid is None:
                    continue
                # Several customers may share a company domain: the oldest one wins, and the
                # count is noted so a reader knows the match was a choice.
                self.by_domain.setdefault(domain, cid)
                self.domain_counts[domain] = self.domain_counts.get(domain, 0) + 1
        for chunk in _chunks(sorted(message_ids), 500):
            thread_rows = s.exec(
                select(Interaction.external_id, Interaction.thread_key).where(
                    col(Interaction.external_id).in_(chunk),
                    Interaction.channel == Channel.email,
                )
            )
            for mid, thread in thread_rows:
                if mid and thread:
                    self.threads.setdefault(mid, thread)

    def match(self, address: str) -> tuple[int, str] | None:
        if not address:
            return None
        cid = self.by_email.get(address)
        if cid is not None:
            return cid, "email"
        for domain in _domain_candidates(address):
            cid = self.by_domain.get(domain)
            if cid is not None:
                n = self.domain_counts.get(domain, 1)
                return cid, "domain" if n == 1 else f"domain (oldest of {n} customers)"
        return None


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------- public API


def capture_mail(
    session: Session, *, mail: IncomingMail, policy: CapturePolicy, actor: Actor
) -> CaptureResult:
    """Store one mail (see :func:`capture_mails`)."""
    return capture_mails(session, mails=[mail], policy=policy, actor=actor)[0]


def capture_mails(
    session: Session, *, mails: Sequence[IncomingMail], policy: CapturePolicy, actor: Actor
) -> list[CaptureResult]:
    """Store a batch of mails in the caller's transaction; one result per mail, same order.

    Never raises for a bad message (it is quarantined); raises only when the database
    itself fails, in which case the caller's transaction rolls back and nothing is half-written.
    """
    actor.require_write()
    if not mails:
        return []
    try:
        with session.begin_nested():
            return _capture_fast(session, mails, policy, actor)
    except (SQLAlchemyError, CRMError, ValueError, TypeError) as exc:
        # The savepoint rolled back: redo mail by mail so one bad message cannot sink the rest.
        logger.info("batch of %d mails stored one by one (%s)", len(mails), exc)
    return [_capture_one_safely(session, m, policy, actor) for m in mails]


def _capture_one_safely(
    session: Session, mail: IncomingMail, policy: CapturePolicy, actor: Actor
) -> CaptureResult:
    try:
        with session.begin_nested():
            return _capture_fast(session, [mail], policy, actor)[0]
    except IntegrityError:
        # Stored concurrently by another replica between our check and insert.
        with session.begin_nested():
            existing = _existing_interactions(session, [mail.external_id])
        if mail.external_id in existing:
            iid, cid = existing[mail.external_id]
            return CaptureResult(CaptureOutcome.duplicate, mail.external_id, iid, cid)
        reason = "could not be stored: the database refused it (constraint)"
    except (SQLAlchemyError, CRMError, ValueError, TypeError) as exc:
        logger.warning("mail %s could not be stored: %s", mail.external_id, exc, exc_info=True)
        reason = f"could not be stored: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    with session.begin_nested():
        return _set_aside(session, mail, reason, actor)


def _existing_interactions(session: Session, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Mail interactions already stored under these keys, from any transport (rows stored
    before the key was shared by all transports carry the transport's name as their source)."""
    found: dict[str, tuple[int, int]] = {}
    for chunk in _chunks(sorted(set(keys)), 500):
        rows = session.exec(
            select(Interaction.external_id, Interaction.id, Interaction.customer_id).where(
                col(Interaction.external_id).in_(chunk), Interaction.channel == Channel.email
            )
        )
        for key, iid, cid in rows:
            if key is not None and iid is not None:
                found.setdefault(key, (iid, cid))
    return found


def _open_set_aside(session: Session, keys: Sequence[str]) -> dict[str, str]:
    """Unresolved quarantined or ignored records under these keys: key -> outcome."""
    found: dict[str, str] = {}
    for chunk in _chunks(sorted(set(keys)), 500):
        rows = session.exec(
            select(QuarantinedMessage.external_id, QuarantinedMessage.outcome).where(
                col(QuarantinedMessage.external_id).in_(chunk),
                col(QuarantinedMessage.resolved_at).is_(None),
            )
        )
        for key, outcome in rows:
            found.setdefault(key, outcome)
    return found


def set_aside_reason(mail: IncomingMail, policy: CapturePolicy) -> str | None:
    """Why ``mail`` is set aside whoever sent it, or would create no lead from an unknown
    sender: an automatic reply or report, or list or role mail. None for ordinary mail."""
    if mail.auto_reply:
        return f"automatic reply ({mail.auto_reason})" if mail.auto_reason else "automatic reply"
    if policy.list_leads:
        return None
    sender = mail.sender
    return mail.list_mail or (role_address_reason(sender.address) if sender else None)


def _plan_party(plan: _Plan, policy: CapturePolicy) -> None:
    """Decide direction and the customer-side address, or a reason to stop."""
    mail = plan.mail
    if mail.unusable_reason:
        plan.quarantine_reason = mail.unusable_reason
        return
    if mail.auto_reply:
        plan.result = CaptureResult(
            CaptureOutcome.ignored, plan.key, reason=set_aside_reason(mail, policy)
        )
        return
    sender = mail.sender
    if _forwarded_by_customer(mail, policy):
        # A customer forwarding something to us is the one writing to us: credit them; the
        # author of what they forwarded is kept in the interaction's meta.
        sender = mail.forwarded_by
    if mail.forwarded and (sender is None or not (sender.address or sender.name)):
        plan.quarantine_reason = "forwarded mail without a recognisable original sender"
        return
    if sender is None:
        plan.quarantine_reason = "no sender address"
        return
    if sender.address and policy.is_internal(sender.address):
        # Staff writing to a customer with the CRM inbox in BCC (or forwarding their own mail).
        plan.direction = Direction.outbound
        recipients = [
            a for a in [*mail.to, *mail.cc] if a.address and not policy.is_internal(a.address)
        ]
        if not recipients:
            plan.result = CaptureResult(
                CaptureOutcome.ignored,
                plan.key,
                reason="internal mail: no customer among the recipients",
            )
            return
        plan.party = recipients[0]
        return
    plan.direction = Direction.inbound
    plan.party = sender
    if not policy.list_leads:
        plan.bulk = mail.list_mail or role_address_reason(sender.address) or None


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value) or None


def _skip_forgotten(session: Session, plans: Sequence[_Plan], policy: CapturePolicy) -> None:
    """Mail whose customer party was erased on request is not captured (nor quarantined:
    that would keep their mail)."""
    if not policy.skip_forgotten:
        return
    open_plans = [
        p
        for p in plans
        if p.result is None and p.quarantine_reason is None and p.party and p.party.address
    ]
    if not open_plans or session.exec(select(ForgottenContact.id).limit(1)).first() is None:
        return
    key = hashing_key(session, policy.forget_key)
    forgotten = forgotten_emails(
        session, key=key, emails={p.party.address for p in open_plans if p.party}
    )
    for p in open_plans:
        if p.party and p.party.address.lower() in forgotten:
            p.result = CaptureResult(
                CaptureOutcome.ignored,
                p.key,
                reason="the sender was erased on request; their mail is not captured",
            )
            p.no_trace = True


def _capture_fast(
    session: Session, mails: Sequence[IncomingMail], policy: CapturePolicy, actor: Actor
) -> list[CaptureResult]:
    plans = [_Plan(mail=m, key=m.external_id) for m in mails]
    keys = [p.key for p in plans]
    existing = _existing_interactions(session, keys)
    set_aside = _open_set_aside(session, keys)

    seen_in_batch: set[str] = set()
    for p in plans:
        if p.key in existing:
            iid, cid = existing[p.key]
            p.result = CaptureResult(CaptureOutcome.duplicate, p.key, iid, cid)
        elif p.key in seen_in_batch:
            p.result = CaptureResult(CaptureOutcome.duplicate, p.key, reason="twice in one batch")
        else:
            seen_in_batch.add(p.key)
            _plan_party(p, policy)
    _skip_forgotten(session, plans, policy)

    # One round of lookups for every address, domain and parent Message-ID in the batch.
    emails: set[str] = set()
    domains: set[str] = set()
    parent_ids: set[str] = set()
    for p in plans:
        if p.result is None and p.quarantine_reason is None and p.party is not None:
            addresses = [p.party.address]
            if p.direction == Direction.outbound:
                addresses = [
                    a.address
                    for a in [*p.mail.to, *p.mail.cc]
                    if a.address and not policy.is_internal(a.address)
                ]
            for a in addresses:
                if a:
                    emails.add(a)
                    domains.update(_domain_candidates(a))
            parent_ids.update(_parents(p.mail))
            parent_ids.add(_thread_root(p.mail))
    lookups = _Lookups(session)
    lookups.load(emails, domains, parent_ids)

    for p in plans:
        if p.result is not None or p.quarantine_reason is not None:
            continue
        _match_customer(session, p, lookups, policy, actor)
    _create_new_leads(session, plans, lookups, actor)

    results: list[CaptureResult] = []
    new_rows: list[tuple[_Plan, dict[str, Any]]] = []
    batch_threads: dict[str, str] = {}
    now = utcnow()
    for p in plans:
        if p.result is None and p.quarantine_reason is None and p.customer_id is not None:
            new_rows.append((p, _build_interaction(p, lookups, batch_threads, policy, now)))
    stored: dict[int, tuple[int, int]] = {}
    if new_rows:
        # One multi-row INSERT ... RETURNING for the batch (the ORM unit of work per object
        # costs more than parsing the mail); the unique (source, external_id) constraint
        # still guards against a concurrent writer: a conflict sends the batch to the
        # one-by-one path.
        ids = (
            session.execute(
                sa.insert(_interactions).returning(
                    _interactions.c.id, sort_by_parameter_order=True
                ),
                [row for _, row in new_rows],
            )
            .scalars()
            .all()
        )
        events = []
        for (p, row), iid in zip(new_rows, ids, strict=True):
            stored[id(p)] = (iid, row["customer_id"])
            events.append(
                {
                    "at": now,
                    "actor": actor.name[:200],
                    "action": "capture",
                    "entity": "interaction",
                    "entity_id": str(iid),
                    "before": None,
                    "after": {
                        "customer_id": row["customer_id"],
                        "direction": row["direction"].value,
                        "occurred_at": row["occurred_at"].isoformat(),
                        "subject": row["subject"],
                        "source": (row["meta"] or {}).get("received_via"),
                        "external_id": row["external_id"],
                        "matched_on": (row["meta"] or {}).get("matched_on"),
                        "captured_by": (row["meta"] or {}).get("captured_by"),
                    },
                }
            )
        # Audit rows in the same transaction as the interactions they describe.
        record_events(session, events)
    resolved_keys: list[str] = []
    for p in plans:
        if p.quarantine_reason is not None or (
            p.result is not None and p.result.outcome == CaptureOutcome.ignored
        ):
            outcome = (
                CaptureOutcome.ignored
                if p.quarantine_reason is None
                else (CaptureOutcome.quarantined)
            )
            reason = p.quarantine_reason or (p.result.reason if p.result else None) or "ignored"
            if p.no_trace and p.result is not None:
                results.append(p.result)
            elif p.key in set_aside:
                # Set aside before (a re-import, the same message from another source).
                already = "in quarantine" if set_aside[p.key] == "quarantined" else "ignored"
                results.append(
                    CaptureResult(
                        CaptureOutcome.duplicate, p.key, reason=f"already {already}: {reason}"
                    )
                )
            else:
                results.append(_set_aside(session, p.mail, reason, actor, outcome))
        elif id(p) in stored:
            iid, cid = stored[id(p)]
            if p.key in set_aside:
                resolved_keys.append(p.key)
            results.append(CaptureResult(CaptureOutcome.stored, p.key, iid, cid))
        else:
            results.append(
                p.result
                or CaptureResult(
                    CaptureOutcome.ignored, p.key, reason="no customer (policy ignore)"
                )
            )
    for key in resolved_keys:
        # The mail could not be used before (e.g. unknown sender); now it is stored.
        session.execute(
            sa.update(QuarantinedMessage)
            .where(
                col(QuarantinedMessage.external_id) == key,
                col(QuarantinedMessage.resolved_at).is_(None),
            )
            .values(resolved_at=now)
        )
    session.flush()
    return results


def _match_customer(
    session: Session, p: _Plan, lookups: _Lookups, policy: CapturePolicy, actor: Actor
) -> None:
    assert p.party is not None
    candidates = [p.party]
    if p.direction == Direction.outbound:
        candidates = [
            a for a in [*p.mail.to, *p.mail.cc] if a.address and not policy.is_internal(a.address)
        ]
    for candidate in candidates:
        if p.bulk is not None:
            # List and role mail counts only for a contact we know by this very address.
            cid = lookups.by_email.get(candidate.address)
            found = None if cid is None else (cid, "email")
        else:
            found = lookups.match(candidate.address)
        if found is not None:
            p.customer_id, p.matched_on = found
            p.party = candidate
            return
    party = p.party
    if p.bulk is not None:
        p.result = CaptureResult(
            CaptureOutcome.ignored,
            p.key,
            reason=f"list or role mail ({p.bulk}) from no known contact: no lead created",
        )
        return
    if not party.address:
        # A forward that names the customer but prints no address: a unique exact name will do.
        ids = list(
            session.exec(
                select(Customer.id).where(Customer.name_key == name_key(party.name)).limit(2)
            )
        )
        if len(ids) == 1 and ids[0] is not None:
            p.customer_id, p.matched_on = ids[0], "name"
            return
        p.quarantine_reason = (
            f"the original sender {party.name!r} is named without an address"
            " and matches no single customer"
        )
        return
    if policy.unknown_sender == "ignore":
        p.result = CaptureResult(
            CaptureOutcome.ignored, p.key, reason=f"unknown sender {party.address} (policy ignore)"
        )
        return
    if policy.unknown_sender == "quarantine":
        p.quarantine_reason = f"unknown sender {party.address} (policy quarantine)"
        return
    if not is_email(party.address):
        p.quarantine_reason = f"{party.address!r} is not a usable email address"
        return
    if p.direction == Direction.inbound and _attach_by_signature(session, p, lookups, actor):
        return
    # A lead to be created with the batch's other new leads; until then a placeholder id
    # (negative), which later mails in the batch from this address or company find too.
    p.customer_id = -(len(lookups.new_leads) + 1)
    lookups.new_leads.append(party)
    p.matched_on = "new lead"
    lookups.by_email[party.address] = p.customer_id
    for domain in _domain_candidates(party.address)[:1]:
        lookups.by_domain.setdefault(domain, p.customer_id)


# A new address is a known customer's when the mail's signature gives a phone number that
# customer has, under a name at least this alike (rapidfuzz token-sort ratio of the normalised
# names, 0-100): the address is added to them instead of a lead being made. (The rule CSV
# imports follow too: crm.services.importer.ATTACH_NAME_SIMILARITY.)
ATTACH_NAME_SIMILARITY = 90.0
# A number in a signature: written in the international form (+ or 00), or after a label; a
# number is labelled by the nearest label before it on its line ("Tel: ... | Fax: ...").
_PHONE_LABEL = re.compile(
    r"(?i)(?<![^\W\d_])(telephone|telefone|tel|tél|phone|ph|mob|mobile|mobil|cell|fon|telefon|"
    r"telefono|teléfono|téléphone|handy|tlf|puh|fax|telefax|[tmpwf])\s*[.:]"
)
_FAX_LABELS = frozenset({"fax", "telefax", "f"})
_PHONE_NUMBER = re.compile(r"(?<![\w+])(\+|00)?\(?\d[\d \t().\-/]{5,}\d(?!\w)")


def signature_phones(signature: str) -> list[str]:
    """Phone numbers in a mail signature, normalised (fax numbers left out)."""
    found: list[str] = []
    for line in signature.splitlines()[:30]:
        labels = [(m.end(), m.group(1).lower()) for m in _PHONE_LABEL.finditer(line)]
        for match in _PHONE_NUMBER.finditer(line):
            label = next((name for end, name in reversed(labels) if end <= match.start()), None)
            if label in _FAX_LABELS:
                continue
            if match.group(1) is None and label is None:
                continue  # digits without a + or a label: a date, an order number, ...
            try:
                phone = normalise_phone(match.group(0).replace("(0)", ""))
            except CRMError:
                continue
            if phone not in found:
                found.append(phone)
    return found


def _attach_by_signature(session: Session, p: _Plan, lookups: _Lookups, actor: Actor) -> bool:
    """File a mail from a new address under the known customer whose phone number its
    signature gives, when the sender's name agrees; the address becomes theirs (audited)."""
    from rapidfuzz import fuzz

    party = p.party
    if party is None or not party.name.strip() or not p.mail.signature:
        return False
    phones = signature_phones(p.mail.signature)
    if not phones:
        return False
    by_digest = contact_digests(session, ContactKind.phone, phones)
    holders = dict(
        session.execute(
            sa.select(ContactPoint.digest, ContactPoint.customer_id).where(  # type: ignore[call-overload]
                ContactPoint.kind == ContactKind.phone,
                col(ContactPoint.digest).in_(list(by_digest)),
            )
        ).all()
    )
    for digest, holder in holders.items():
        customer = session.get(Customer, holder)
        if customer is None:
            continue
        alike = fuzz.token_sort_ratio(name_key(party.name), customer.name_key or "")
        if alike < ATTACH_NAME_SIMILARITY:
            continue
        reasons = f"same phone in the signature; names {alike:.0f}% alike"
        try:
            with session.begin_nested():
                attach_email(
                    session,
                    customer_id=holder,
                    email=party.address,
                    actor=actor,
                    source="mail",
                    name=party.name,
                    reasons=reasons,
                    phone=by_digest[digest],
                )
        except (IntegrityError, CRMError):
            return False  # another replica gave the address to someone a moment ago
        p.customer_id, p.matched_on = holder, f"attached: {reasons}"
        lookups.by_email[party.address] = holder
        return True
    return False


def _lead_name(party: MailAddress) -> str:
    name = " ".join(_no_nul(party.name).split())[:200] or party.address.split("@", 1)[0][:200]
    return name or party.address


def _create_new_leads(
    session: Session, plans: Sequence[_Plan], lookups: _Lookups, actor: Actor
) -> None:
    """Create the batch's new leads together and put their ids in place of the placeholders."""
    if not lookups.new_leads:
        return
    people = [(_lead_name(party), party.address) for party in lookups.new_leads]
    try:
        with session.begin_nested():
            created = create_leads(session, people=people, actor=actor)
        ids = [created[normalise_email(address)] for _name, address in people]
    except IntegrityError:
        # Another replica created one of them a moment ago: one by one, reusing theirs.
        ids = [_create_lead(session, party, actor) for party in lookups.new_leads]
    for p in plans:
        if p.customer_id is not None and p.customer_id < 0:
            p.customer_id = ids[-p.customer_id - 1]


def _contact_owner(session: Session, address: str) -> int | None:
    return session.exec(
        select(ContactPoint.customer_id).where(
            ContactPoint.kind == ContactKind.email,
            ContactPoint.digest == contact_digest(session, ContactKind.email, address),
        )
    ).first()


def _create_lead(session: Session, party: MailAddress, actor: Actor) -> int:
    # Another replica may have created this lead since the batch looked (committed: seen now).
    existing = _contact_owner(session, party.address)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            customer = create_customer(
                session,
                actor=actor,
                customer_in=CustomerCreate(
                    name=_lead_name(party), email=party.address, status=CustomerStatus.lead
                ),
            )
    except IntegrityError:
        # ... or a moment ago, not yet committed when we inserted.
        existing = _contact_owner(session, party.address)
        if existing is None:
            raise
        return existing
    assert customer.id is not None
    return customer.id


def _build_interaction(
    p: _Plan,
    lookups: _Lookups,
    batch_threads: dict[str, str],
    policy: CapturePolicy,
    now: datetime,
) -> dict[str, Any]:
    """The interaction row for one mail."""
    mail = p.mail
    thread_key: str | None = None
    for parent in _parents(mail):
        thread_key = batch_threads.get(parent) or lookups.threads.get(parent)
        if thread_key:
            break
    if not thread_key:
        root = _thread_root(mail)
        thread_key = batch_threads.get(root) or lookups.threads.get(root) or f"mail:{root}"
    thread_key = _no_nul(thread_key)[:500]
    if mail.message_id:
        batch_threads[p.key] = thread_key

    occurred_at = mail.date
    problems = list(mail.problems)
    if occurred_at is None or occurred_at.tzinfo is None or occurred_at > now + _FUTURE_SLACK:
        if occurred_at is not None:
            problems.append("Date header ignored (in the future or without a time zone)")
        occurred_at = now

    body = _no_nul(mail.new_text or "")
    # Every value is plain JSON (text, numbers, lists, dicts) with its NULs taken out here.
    meta: dict[str, Any] = {
        "message_id": _no_nul(mail.message_id or ""),
        "from": _no_nul(mail.from_.display()) if mail.from_ else None,
        "to": _addr_list(mail.to),
        "cc": _addr_list(mail.cc),
        "matched_on": p.matched_on,
        "raw_size": mail.raw_size,
        "received_via": _no_nul(mail.source),
        "origin": _no_nul(mail.origin),
    }
    if p.party is not None and p.direction == Direction.outbound:
        meta["recipient"] = _no_nul(p.party.display())
    if mail.forwarded and mail.forwarded_by is not None:
        by = _no_nul(mail.forwarded_by.display())
        meta["forwarded_by"] = by
        if _forwarded_by_customer(mail, policy):
            if mail.original_sender is not None:
                meta["forwarded_from"] = _no_nul(mail.original_sender.display())
        else:
            meta["captured_by"] = f"captured by {by} via forward"
        if mail.forward_note:
            meta["forward_note"] = _clean(mail.forward_note, 2_000)
    if mail.in_reply_to:
        meta["in_reply_to"] = _no_nul(mail.in_reply_to)
    if mail.references:
        meta["references"] = [_no_nul(r) for r in mail.references[-MAX_REFERENCES:]]
    if mail.quoted_text:
        meta["quoted_text"] = _clean(mail.quoted_text, MAX_QUOTED_CHARS)
        if len(mail.quoted_text) > MAX_QUOTED_CHARS:
            meta["quoted_text_chars"] = len(mail.quoted_text)
    if mail.signature:
        meta["signature"] = _clean(mail.signature, 2_000)
    if mail.attachments:
        meta["attachments"] = [
            {"name": _no_nul(a.name)[:300], "type": _no_nul(a.content_type)[:100], "size": a.size}
            for a in mail.attachments[:MAX_LISTED]
        ]
    limit = min(policy.max_body_chars, MAX_BODY_CHARS)
    if len(body) > limit:
        meta["truncated_from_chars"] = len(body)
        body = body[:limit]
    if mail.truncated:
        meta["truncated"] = True
    if problems:
        meta["problems"] = [_no_nul(x)[:300] for x in problems[:20]]
    meta = {k: v for k, v in meta.items() if v not in (None, [], "")}
    author = p.party if p.direction == Direction.inbound else mail.from_
    subject = " ".join(_no_nul(mail.subject or "").split())[:500] or None
    return {
        "customer_id": p.customer_id,
        "deal_id": None,
        "channel": Channel.email,
        "direction": p.direction or Direction.inbound,
        "occurred_at": occurred_at,
        "subject": subject,
        "body": body,
        "author": _no_nul(author.display() if author else "")[:320] or None,
        "source": MAIL_SOURCE,
        "external_id": p.key,
        "thread_key": thread_key,
        "amount": None,
        "currency": None,
        "meta": meta or None,
        "holds_raw_mail": holds_raw_mail(meta),
        "deleted_at": None,
        "created_at": now,
        "updated_at": now,
    }


def _set_aside(
    session: Session,
    mail: IncomingMail,
    reason: str,
    actor: Actor,
    outcome: CaptureOutcome = CaptureOutcome.quarantined,
) -> CaptureResult:
    """Keep a message that is not stored as an interaction, raw, with the reason and where it
    came from: quarantined (it could not be used) or ignored (it was not meant for the CRM)."""
    key = mail.external_id
    sender = mail.sender or mail.from_
    item = QuarantinedMessage(
        source=MAIL_SOURCE,
        external_id=key,
        reason=_no_nul(reason),
        raw=mail.raw,
        outcome=outcome.value,
        origin=_clean(" ".join(x for x in (mail.source, mail.origin) if x), 1000),
        subject=" ".join(_no_nul(mail.subject or "").split())[:500] or None,
        sender=_no_nul(sender.display())[:320] if sender is not None else None,
        sent_at=mail.date if mail.date is not None and mail.date.tzinfo is not None else None,
    )
    try:
        with session.begin_nested():
            session.add(item)
            session.flush()
    except IntegrityError:
        # Set aside already (and unresolved or resolved): keep the first record.
        already = "in quarantine" if outcome == CaptureOutcome.quarantined else "ignored"
        return CaptureResult(CaptureOutcome.duplicate, key, reason=f"already {already}: {reason}")
    logger.info("mail %s from %s %s: %s", key, item.origin, outcome.value, reason)
    record_event(
        session,
        actor=actor,
        action="quarantine" if outcome == CaptureOutcome.quarantined else "ignore",
        entity="mail",
        entity_id=item.id,
        after={"origin": item.origin, "external_id": key, "reason": item.reason},
    )
    return CaptureResult(outcome, key, reason=reason)


def quarantine_raw(
    session: Session, *, source: str, raw: bytes, content_hash: str, reason: str, actor: Actor
) -> CaptureResult:
    """Quarantine bytes a transport could not even turn into an IncomingMail."""
    actor.require_write()
    mail = IncomingMail(source=source, content_hash=content_hash, raw=raw, raw_size=len(raw))
    with session.begin_nested():
        return _set_aside(session, mail, reason, actor)


def _set_aside_query(outcome: CaptureOutcome, include_resolved: bool) -> Any:
    stmt = select(QuarantinedMessage).where(QuarantinedMessage.outcome == outcome.value)
    if not include_resolved:
        stmt = stmt.where(col(QuarantinedMessage.resolved_at).is_(None))
    return stmt


def list_quarantine(
    session: Session,
    *,
    outcome: CaptureOutcome = CaptureOutcome.quarantined,
    include_resolved: bool = False,
    limit: int | None = 50,
) -> list[QuarantinedMessage]:
    """Quarantined (or, with ``outcome=ignored``, ignored) mail, newest first."""
    stmt = _set_aside_query(outcome, include_resolved).order_by(col(QuarantinedMessage.id).desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt))


def count_quarantine(
    session: Session,
    *,
    outcome: CaptureOutcome = CaptureOutcome.quarantined,
    include_resolved: bool = False,
) -> int:
    stmt = _set_aside_query(outcome, include_resolved).subquery()
    return int(session.exec(select(sa.func.count()).select_from(stmt)).one())


# --------------------------------------------------------------------------- mailbox sync state


def get_mailbox_state(session: Session, mailbox: str) -> MailboxState | None:
    return session.exec(select(MailboxState).where(MailboxState.mailbox == mailbox)).first()


def mailbox_states(session: Session) -> list[MailboxState]:
    return list(session.exec(select(MailboxState).order_by(col(MailboxState.mailbox))))


def _state_for_update(session: Session, mailbox: str) -> MailboxState:
    state = session.exec(
        select(MailboxState).where(MailboxState.mailbox == mailbox).with_for_update()
    ).first()
    if state is None:
        try:
            with session.begin_nested():
                state = MailboxState(mailbox=mailbox[:300])
                session.add(state)
                session.flush()
        except IntegrityError:
            state = session.exec(
                select(MailboxState).where(MailboxState.mailbox == mailbox).with_for_update()
            ).first()
            assert state is not None
    return state


def begin_mailbox_sync(
    session: Session, *, mailbox: str, uid_validity: int, actor: Actor
) -> MailboxState:
    """Note an attempt; on a new UIDVALIDITY start over from UID 0 (duplicates are skipped)."""
    state = _state_for_update(session, mailbox)
    state.last_attempt_at = utcnow()
    if state.uid_validity != uid_validity:
        if state.uid_validity is not None:
            logger.warning(
                "mailbox %s: UIDVALIDITY changed from %s to %s; resyncing every message",
                mailbox,
                state.uid_validity,
                uid_validity,
            )
            record_event(
                session,
                actor=actor,
                action="uidvalidity_reset",
                entity="mailbox",
                entity_id=state.id,
                before={"uid_validity": state.uid_validity, "last_uid": state.last_uid},
                after={"uid_validity": uid_validity, "last_uid": 0},
            )
        state.uid_validity = uid_validity
        state.last_uid = 0
        state.flagged_uid = 0
    session.add(state)
    session.flush()
    return state


def advance_mailbox(
    session: Session,
    *,
    mailbox: str,
    uid_validity: int,
    last_uid: int,
    results: Sequence[CaptureResult] = (),
) -> MailboxState:
    """Move the sync point in the same transaction as the mails it covers."""
    state = _state_for_update(session, mailbox)
    if state.uid_validity != uid_validity:
        raise CRMError(
            f"Mailbox {mailbox} changed UIDVALIDITY during the sync; it will start over."
        )
    state.last_uid = max(state.last_uid, last_uid)
    summary = CaptureSummary()
    summary.add(results)
    state.stored_count += summary.stored
    state.duplicate_count += summary.duplicate
    state.quarantined_count += summary.quarantined
    state.ignored_count += summary.ignored
    session.add(state)
    session.flush()
    return state


def mark_flagged(session: Session, *, mailbox: str, uid_validity: int, uid: int) -> None:
    """The post-commit step (\\Seen or move) is done up to ``uid``."""
    state = _state_for_update(session, mailbox)
    if state.uid_validity == uid_validity:
        state.flagged_uid = max(state.flagged_uid, min(uid, state.last_uid))
        session.add(state)


def record_sync_success(session: Session, *, mailbox: str) -> MailboxState:
    state = _state_for_update(session, mailbox)
    state.last_success_at = utcnow()
    state.consecutive_failures = 0
    session.add(state)
    session.flush()
    return state


def record_sync_failure(session: Session, *, mailbox: str, error: str) -> MailboxState:
    state = _state_for_update(session, mailbox)
    now = utcnow()
    state.last_attempt_at = now
    state.last_error = _no_nul(error)[:2_000]
    state.last_error_at = now
    state.consecutive_failures += 1
    session.add(state)
    session.flush()
    return state
