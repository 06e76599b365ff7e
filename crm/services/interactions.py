"""Interactions: record (idempotent per source + external id), edit, delete, timeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from crm.models import Channel, Deal, Interaction, InteractionCreate, utcnow
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.customers import get_customer
from crm.services.errors import CRMError, NotFound
from crm.services.normalise import clean_text, normalise_currency, parse_money, storable_id
from crm.services.retention import holds_raw_mail

MAX_BODY_CHARS = 100_000


def find_by_external_id(session: Session, source: str, external_id: str) -> Interaction | None:
    stmt = select(Interaction).where(
        Interaction.source == source, Interaction.external_id == external_id
    )
    return session.exec(stmt).first()


def _audit_view(interaction: Interaction) -> dict[str, object]:
    return {
        "customer_id": interaction.customer_id,
        "deal_id": interaction.deal_id,
        "channel": interaction.channel,
        "direction": interaction.direction,
        "occurred_at": interaction.occurred_at,
        "subject": interaction.subject,
        "source": interaction.source,
        "external_id": interaction.external_id,
        "amount": interaction.amount,
    }


def record_interaction(
    session: Session,
    *,
    interaction_in: InteractionCreate,
    actor: Actor,
    default_currency: str = "USD",
) -> tuple[Interaction, bool]:
    """Store an interaction; returns (interaction, created). The same source + external id twice is a no-op."""
    actor.require_write()
    data = interaction_in
    if data.external_id:
        existing = find_by_external_id(session, data.source, data.external_id)
        if existing is not None:
            return existing, False
    get_customer(session, data.customer_id)
    if data.deal_id is not None:
        deal = session.get(Deal, data.deal_id) if storable_id(data.deal_id) else None
        if deal is None or deal.customer_id != data.customer_id:
            raise CRMError(f"Deal #{data.deal_id} does not belong to customer #{data.customer_id}.")
    occurred_at = data.occurred_at or utcnow()
    if occurred_at.tzinfo is None:
        raise CRMError("The interaction time has no time zone.")
    amount = parse_money(data.amount) if data.amount is not None else None
    if data.channel == Channel.purchase and amount is None:
        raise CRMError("A purchase needs an amount.")
    body = data.body or ""
    meta = dict(data.meta or {})
    if len(body) > MAX_BODY_CHARS:
        meta["truncated_from_chars"] = len(body)
        body = body[:MAX_BODY_CHARS]
    interaction = Interaction(
        customer_id=data.customer_id,
        deal_id=data.deal_id,
        channel=Channel(data.channel),
        direction=data.direction,
        occurred_at=occurred_at,
        subject=clean_text(data.subject, field="subject", max_length=500) if data.subject else None,
        body=body,
        author=(data.author or actor.name)[:320],
        source=data.source[:200],
        external_id=data.external_id[:500] if data.external_id else None,
        thread_key=data.thread_key[:500] if data.thread_key else None,
        amount=amount,
        currency=normalise_currency(data.currency, default_currency)
        if amount is not None
        else None,
        meta=meta or None,
        holds_raw_mail=holds_raw_mail(meta),
    )
    if data.external_id:
        # A concurrent writer may store the same message between our check and insert.
        try:
            with session.begin_nested():
                session.add(interaction)
                session.flush()
        except IntegrityError:
            existing = find_by_external_id(session, data.source, data.external_id)
            if existing is None:
                raise
            return existing, False
    else:
        session.add(interaction)
        session.flush()
    record_event(
        session,
        actor=actor,
        action="record",
        entity="interaction",
        entity_id=interaction.id,
        after=_audit_view(interaction),
    )
    return interaction, True


def update_interaction_body(
    session: Session, *, source: str, external_id: str, body: str, actor: Actor
) -> Interaction | None:
    """An edit at the source (e.g. a Slack message edited) updates the stored text."""
    actor.require_write()
    interaction = find_by_external_id(session, source, external_id)
    if interaction is None:
        return None
    before = {"body": interaction.body}
    interaction.body = body[:MAX_BODY_CHARS]
    interaction.updated_at = utcnow()
    session.add(interaction)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="edit",
        entity="interaction",
        entity_id=interaction.id,
        before=before,
        after={"body": interaction.body},
    )
    return interaction


def mark_interaction_deleted(
    session: Session, *, source: str, external_id: str, actor: Actor
) -> Interaction | None:
    actor.require_write()
    interaction = find_by_external_id(session, source, external_id)
    if interaction is None or interaction.deleted_at is not None:
        return interaction
    interaction.deleted_at = utcnow()
    session.add(interaction)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="delete",
        entity="interaction",
        entity_id=interaction.id,
        before=_audit_view(interaction),
    )
    return interaction


def count_interactions(session: Session, *, customer_id: int) -> int:
    """How many interactions a customer's whole timeline holds."""
    stmt = select(func.count()).where(
        Interaction.customer_id == customer_id, col(Interaction.deleted_at).is_(None)
    )
    return int(session.exec(stmt).one())


def timeline(
    session: Session, *, customer_id: int, limit: int | None = 20, before: datetime | None = None
) -> list[Interaction]:
    get_customer(session, customer_id)
    stmt = select(Interaction).where(
        Interaction.customer_id == customer_id, col(Interaction.deleted_at).is_(None)
    )
    if before is not None:
        stmt = stmt.where(Interaction.occurred_at < before)
    stmt = stmt.order_by(col(Interaction.occurred_at).desc(), col(Interaction.id).desc()).limit(
        limit
    )
    return list(session.exec(stmt))


def get_interaction(session: Session, interaction_id: int) -> Interaction:
    interaction = session.get(Interaction, interaction_id) if storable_id(interaction_id) else None
    if interaction is None:
        raise NotFound(f"There is no interaction #{interaction_id}.")
    return interaction
