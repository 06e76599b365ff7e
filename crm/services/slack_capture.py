"""Chat messages as interactions: linked channels, captured messages, edits, deletions.

Transports hand over plain values (``ChatMessage``); nothing here knows Slack's SDK. Keys:
``source`` is ``slack:<team>`` (or ``slack:<channel>`` when the team is unknown),
``external_id`` is ``<channel>:<ts>`` and ``thread_key`` is ``<channel>:<thread ts>``, so a
re-delivered event, or the same message logged by hand later, is stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from crm.models import (
    Channel,
    ChannelLink,
    ContactKind,
    ContactPoint,
    Deal,
    Direction,
    Interaction,
    InteractionCreate,
)
from crm.services.actor import Actor
from crm.services.audit import record_event, snapshot
from crm.services.customers import get_customer
from crm.services.errors import CRMError, NotFound
from crm.services.interactions import (
    mark_interaction_deleted,
    record_interaction,
    update_interaction_body,
)
from crm.services.normalise import email_domain, is_email, normalise_email, storable_id

logger = logging.getLogger(__name__)

# Message subtypes that are someone saying something; everything else (joins, leaves,
# topic changes, bot posts...) is channel housekeeping and is not captured.
CAPTURED_SUBTYPES = frozenset({"", "thread_broadcast", "file_share", "me_message"})


@dataclass(frozen=True)
class ChatFile:
    name: str
    url: str | None = None


@dataclass(frozen=True)
class ChatMessage:
    """One chat message as plain values."""

    channel: str
    ts: str
    text: str
    user: str | None = None
    team: str | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    bot_id: str | None = None
    files: Sequence[ChatFile] = ()
    # What we know of the author (from the user directory): their email, and whether they
    # belong to another organisation (a Slack Connect guest), i.e. the customer's side.
    author_email: str | None = None
    author_name: str | None = None
    author_is_external: bool = False
    permalink: str | None = None


@dataclass
class CaptureResult:
    interaction: Interaction | None
    created: bool
    skipped: str | None = None
    extras: dict[str, object] = field(default_factory=dict)


def source_for(*, team: str | None, channel: str) -> str:
    return f"slack:{team or channel}"


def message_key(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def occurred_at(ts: str) -> datetime:
    """Slack's message ts is the epoch time with microseconds ("1700000000.123456")."""
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        raise CRMError(f"{ts!r} is not a message timestamp.") from None


def skip_reason(message: ChatMessage) -> str | None:
    """Why a message is not captured, or None when it should be."""
    if message.bot_id or message.subtype == "bot_message":
        return "bot message"
    if (message.subtype or "") not in CAPTURED_SUBTYPES:
        return f"{message.subtype} message"
    if not message.text.strip() and not message.files:
        return "empty message"
    return None


# ---------------------------------------------------------------- links


def get_link(session: Session, channel_id: str) -> ChannelLink | None:
    return session.exec(select(ChannelLink).where(ChannelLink.channel_id == channel_id)).first()


def link_channel(
    session: Session, *, channel_id: str, customer_id: int, actor: Actor
) -> ChannelLink:
    """Capture a channel's messages for a customer from now on (admins only)."""
    actor.require_admin("link channels")
    channel_id = _channel_id(channel_id)
    customer = get_customer(session, customer_id)
    link = get_link(session, channel_id)
    if link is not None and link.customer_id == customer.id:
        return link
    before = snapshot(link)
    if link is None:
        link = ChannelLink(
            channel_id=channel_id,
            customer_id=customer.id,  # type: ignore[arg-type]
            linked_by=actor.name[:200],
        )
        action = "link"
    else:
        link.customer_id, link.linked_by = customer.id, actor.name[:200]  # type: ignore[assignment]
        action = "relink"
    session.add(link)
    session.flush()
    record_event(
        session,
        actor=actor,
        action=action,
        entity="channel_link",
        entity_id=channel_id,
        before=before,
        after=snapshot(link),
    )
    return link


def unlink_channel(session: Session, *, channel_id: str, actor: Actor) -> ChannelLink:
    actor.require_admin("unlink channels")
    channel_id = _channel_id(channel_id)
    link = get_link(session, channel_id)
    if link is None:
        raise NotFound(f"Channel {channel_id} is not linked to a customer.")
    before = snapshot(link)
    session.delete(link)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="unlink",
        entity="channel_link",
        entity_id=channel_id,
        before=before,
    )
    return link


def _channel_id(value: str) -> str:
    text = (value or "").strip()
    if not text or not text.isalnum() or len(text) > 32:
        raise CRMError(
            f"{value!r} is not a channel id.", hint="Mention the channel, e.g. #acme-shared."
        )
    return text.upper()


# ---------------------------------------------------------------- messages


def _direction(message: ChatMessage) -> Direction:
    return Direction.inbound if message.author_is_external else Direction.outbound


def _matched_contact(session: Session, customer_id: int, email: str | None) -> str | None:
    """The customer's contact an outside author is, by exact email or by the company's domain."""
    if not email or not is_email(email):
        return None
    email = normalise_email(email)
    domain = email_domain(email)
    customer = get_customer(session, customer_id)
    contacts = list(
        session.exec(
            select(ContactPoint.value).where(
                ContactPoint.customer_id == customer_id, ContactPoint.kind == ContactKind.email
            )
        )
    )
    if email in contacts:
        return email
    if customer.domain == domain or any(c.endswith("@" + domain) for c in contacts):
        return email
    return None


def _interaction_in(
    session: Session, message: ChatMessage, *, customer_id: int, deal_id: int | None
) -> InteractionCreate:
    meta: dict[str, object] = {"channel": message.channel, "ts": message.ts}
    if message.user:
        meta["slack_user"] = message.user
    if message.files:
        # Name and link only: the files themselves stay in Slack.
        meta["files"] = [{"name": f.name[:300], "url": f.url} for f in message.files]
    if message.permalink:
        meta["permalink"] = message.permalink
    contact = (
        _matched_contact(session, customer_id, message.author_email)
        if message.author_is_external
        else None
    )
    if contact:
        meta["contact"] = contact
    text = message.text
    if message.files and not text.strip():
        text = "Shared " + ", ".join(f.name for f in message.files)
    author = message.author_email or message.author_name or message.user
    return InteractionCreate(
        customer_id=customer_id,
        deal_id=deal_id,
        channel=Channel.slack,
        direction=_direction(message),
        occurred_at=occurred_at(message.ts),
        body=text,
        author=author,
        source=source_for(team=message.team, channel=message.channel),
        external_id=message_key(message.channel, message.ts),
        thread_key=message_key(message.channel, message.thread_ts or message.ts),
        meta=meta,
    )


def capture_message(session: Session, *, message: ChatMessage, actor: Actor) -> CaptureResult:
    """Store a message posted in a linked channel; a message seen before is not stored twice."""
    link = get_link(session, message.channel)
    if link is None:
        return CaptureResult(None, False, skipped="channel not linked")
    reason = skip_reason(message)
    if reason:
        return CaptureResult(None, False, skipped=reason)
    interaction, created = record_interaction(
        session,
        interaction_in=_interaction_in(
            session, message, customer_id=link.customer_id, deal_id=None
        ),
        actor=actor,
    )
    return CaptureResult(interaction, created)


def capture_edit(
    session: Session, *, team: str | None, channel: str, ts: str, text: str, actor: Actor
) -> Interaction | None:
    """An edited message updates the stored text (None when it was never captured)."""
    return update_interaction_body(
        session,
        source=source_for(team=team, channel=channel),
        external_id=message_key(channel, ts),
        body=text,
        actor=actor,
    )


def capture_delete(
    session: Session, *, team: str | None, channel: str, ts: str, actor: Actor
) -> Interaction | None:
    """A deleted message marks the interaction deleted; the row stays for the audit trail."""
    return mark_interaction_deleted(
        session,
        source=source_for(team=team, channel=channel),
        external_id=message_key(channel, ts),
        actor=actor,
    )


def check_log_target(session: Session, *, customer_id: int, deal_id: int | None) -> None:
    """The customer exists and the deal, if any, is one of theirs."""
    get_customer(session, customer_id)
    if deal_id is None:
        return
    deal = session.get(Deal, deal_id) if storable_id(deal_id) else None
    if deal is None:
        raise NotFound(f"There is no deal #{deal_id}.")
    if deal.customer_id != customer_id:
        raise CRMError(
            f"Deal #{deal_id} belongs to customer #{deal.customer_id}, "
            f"not to customer #{customer_id}.",
            hint="Choose one of this customer's deals, or none.",
        )


def log_messages(
    session: Session,
    *,
    customer_id: int,
    messages: Sequence[ChatMessage],
    actor: Actor,
    deal_id: int | None = None,
) -> list[CaptureResult]:
    """Store messages a person chose to log ("Log to CRM"), e.g. one message or its whole thread."""
    actor.require_write()
    # Checked up front, not only when a row is created: a message stored before (e.g. from a
    # linked channel) gets the deal attached below, and must never get another customer's.
    check_log_target(session, customer_id=customer_id, deal_id=deal_id)
    if not messages:
        raise CRMError("There is no message to log.")
    results: list[CaptureResult] = []
    for message in messages:
        reason = skip_reason(message)
        if reason and message.subtype != "bot_message" and not message.bot_id:
            results.append(CaptureResult(None, False, skipped=reason))
            continue
        interaction, created = record_interaction(
            session,
            interaction_in=_interaction_in(
                session, message, customer_id=customer_id, deal_id=deal_id
            ),
            actor=actor,
        )
        if not created and (
            interaction.customer_id != customer_id or interaction.deal_id != deal_id
        ):
            # Captured before (e.g. from a linked channel): keep one row, note the choice made now.
            if interaction.customer_id != customer_id:
                raise CRMError(
                    f"This message is logged for customer #{interaction.customer_id} already.",
                )
            if deal_id is not None and interaction.deal_id is None:
                interaction.deal_id = deal_id
                session.add(interaction)
                session.flush()
                record_event(
                    session,
                    actor=actor,
                    action="attach_deal",
                    entity="interaction",
                    entity_id=interaction.id,
                    after={"deal_id": deal_id},
                )
        results.append(CaptureResult(interaction, created))
    return results


def linked_channels(session: Session, *, customer_id: int | None = None) -> list[ChannelLink]:
    stmt = select(ChannelLink).order_by(col(ChannelLink.id))
    if customer_id is not None:
        stmt = stmt.where(ChannelLink.customer_id == customer_id)
    return list(session.exec(stmt))
