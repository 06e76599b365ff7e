"""Follow-ups: create with natural-language times, list what is due, complete, snooze."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from crm.models import Customer, Deal, FollowUp, FollowUpKind, FollowUpStatus, utcnow
from crm.services.actor import Actor
from crm.services.audit import record_event, snapshot
from crm.services.customers import check_owner, get_customer
from crm.services.dates import parse_when
from crm.services.errors import CRMError, NotFound
from crm.services.normalise import clean_text, storable_id

_ACTIVE = (FollowUpStatus.open, FollowUpStatus.snoozed)


def get_follow_up(session: Session, follow_up_id: int) -> FollowUp:
    follow_up = session.get(FollowUp, follow_up_id) if storable_id(follow_up_id) else None
    if follow_up is None:
        raise NotFound(
            f"There is no follow-up #{follow_up_id}.",
            hint="Check the follow-up number; the follow-up list shows them.",
        )
    return follow_up


def follow_up_owner(customer: Customer, owner_id: int | None, actor: Actor) -> int | None:
    """Who a new follow-up is for: the owner given, else the person setting it (a follow-up is
    a reminder to oneself), else, when no person acts (the CLI's admin, a job), the customer's
    owner."""
    if owner_id is not None:
        return owner_id
    return actor.user_id if actor.user_id is not None else customer.owner_id


def create_follow_up(
    session: Session,
    *,
    customer_id: int,
    when: str | datetime,
    actor: Actor,
    tz: str,
    note: str = "",
    owner_id: int | None = None,
    deal_id: int | None = None,
    now: datetime | None = None,
    kind: FollowUpKind | str = FollowUpKind.sales,
) -> FollowUp:
    actor.require_write()
    try:
        kind = FollowUpKind(kind)
    except ValueError:
        raise CRMError(
            f"{kind!r} is not a kind of follow-up.",
            hint="Use " + " or ".join(k.value for k in FollowUpKind) + ".",
        ) from None
    customer = get_customer(session, customer_id)
    owner = follow_up_owner(customer, owner_id, actor)
    if owner_id is not None:
        actor.require_owner(owner, "follow-up")  # naming someone else is a manager's call
        check_owner(session, owner_id)
    if deal_id is not None:
        deal = session.get(Deal, deal_id) if storable_id(deal_id) else None
        if deal is None or deal.customer_id != customer_id:
            raise CRMError(f"Deal #{deal_id} does not belong to customer #{customer_id}.")
    now = now or utcnow()
    due_at = (
        when.astimezone(UTC) if isinstance(when, datetime) else parse_when(when, tz=tz, now=now)
    )
    if due_at < now - timedelta(minutes=1):
        raise CRMError(
            f"{when!s} is in the past.", hint="Give a time from now on, e.g. 'tomorrow 9am'."
        )
    follow_up = FollowUp(
        customer_id=customer_id,
        deal_id=deal_id,
        owner_id=owner,
        due_at=due_at,
        note=clean_text(note, field="note", max_length=2000) or "",
        kind=kind,
    )
    session.add(follow_up)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="create",
        entity="follow_up",
        entity_id=follow_up.id,
        after=snapshot(follow_up),
    )
    return follow_up


def _follow_ups_where(
    stmt: Any, *, owner_id: int | None, due_before: datetime | None, customer_id: int | None
) -> Any:
    stmt = stmt.where(col(FollowUp.status).in_(_ACTIVE))
    if owner_id is not None:
        stmt = stmt.where(FollowUp.owner_id == owner_id)
    if customer_id is not None:
        stmt = stmt.where(FollowUp.customer_id == customer_id)
    if due_before is not None:
        stmt = stmt.where(FollowUp.due_at <= due_before)
    return stmt


def list_follow_ups(
    session: Session,
    *,
    owner_id: int | None = None,
    due_before: datetime | None = None,
    customer_id: int | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> list[FollowUp]:
    """Open and snoozed follow-ups, the soonest due first; ``limit=None`` for all of them."""
    stmt = _follow_ups_where(
        select(FollowUp), owner_id=owner_id, due_before=due_before, customer_id=customer_id
    )
    return list(
        session.exec(
            stmt.order_by(col(FollowUp.due_at), col(FollowUp.id)).offset(offset).limit(limit)
        )
    )


def count_follow_ups(
    session: Session,
    *,
    owner_id: int | None = None,
    due_before: datetime | None = None,
    customer_id: int | None = None,
) -> int:
    """How many follow-ups ``list_follow_ups`` would give without a limit."""
    stmt = _follow_ups_where(
        select(func.count()).select_from(FollowUp),
        owner_id=owner_id,
        due_before=due_before,
        customer_id=customer_id,
    )
    return int(session.exec(stmt).one())


def complete_follow_up(session: Session, *, follow_up_id: int, actor: Actor) -> FollowUp:
    follow_up = get_follow_up(session, follow_up_id)
    actor.require_owner(follow_up.owner_id, "follow-up")
    if follow_up.status == FollowUpStatus.done:
        return follow_up  # a second click on "Mark done" changes nothing
    before = snapshot(follow_up)
    follow_up.status = FollowUpStatus.done
    follow_up.completed_at = follow_up.updated_at = utcnow()
    session.add(follow_up)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="complete",
        entity="follow_up",
        entity_id=follow_up.id,
        before=before,
        after=snapshot(follow_up),
    )
    return follow_up


def snooze_follow_up(
    session: Session,
    *,
    follow_up_id: int,
    actor: Actor,
    until: str | datetime | timedelta,
    tz: str,
    now: datetime | None = None,
) -> FollowUp:
    follow_up = get_follow_up(session, follow_up_id)
    actor.require_owner(follow_up.owner_id, "follow-up")
    if follow_up.status == FollowUpStatus.done:
        raise CRMError(f"Follow-up #{follow_up_id} is done already.")
    now = now or utcnow()
    if isinstance(until, timedelta):
        due_at = max(now, follow_up.due_at) + until
    elif isinstance(until, datetime):
        due_at = until.astimezone(UTC)
    else:
        due_at = parse_when(until, tz=tz, now=now)
    if due_at <= now:
        raise CRMError("A snooze must end in the future.")
    before = snapshot(follow_up)
    follow_up.due_at = due_at
    follow_up.status = FollowUpStatus.snoozed
    follow_up.updated_at = now
    session.add(follow_up)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="snooze",
        entity="follow_up",
        entity_id=follow_up.id,
        before=before,
        after=snapshot(follow_up),
    )
    return follow_up
