"""Deals: open, move through stages, win, lose; the stage history is kept."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, func, select

from crm.config import LOST_STAGE, WON_STAGE, Settings
from crm.models import Customer, Deal, DealCreate, DealStageChange, DealStatus, utcnow
from crm.services.actor import Actor
from crm.services.audit import record_event, snapshot
from crm.services.customers import check_owner, get_customer
from crm.services.errors import CRMError, NotFound
from crm.services.normalise import clean_text, normalise_currency, parse_money, storable_id


def get_deal(session: Session, deal_id: int, *, for_update: bool = False) -> Deal:
    if not storable_id(deal_id):
        raise NotFound(
            f"There is no deal #{deal_id}.", hint="Check the deal number; the deal list shows them."
        )
    stmt = select(Deal).where(Deal.id == deal_id)
    if for_update:
        # Serialises concurrent moves of one deal so its history stays a single chain.
        stmt = stmt.with_for_update()
    deal = session.exec(stmt).first()
    if deal is None:
        raise NotFound(
            f"There is no deal #{deal_id}.", hint="Check the deal number; the deal list shows them."
        )
    return deal


def _stage(settings: Settings, stage: str | None, *, open_only: bool) -> str:
    names = settings.open_stages if open_only else settings.stage_names
    if stage is None:
        return settings.open_stages[0]
    value = stage.strip().lower()
    if value not in names:
        raise CRMError(f"{stage!r} is not a deal stage.", hint="Stages: " + ", ".join(names) + ".")
    return value


def deal_owner(customer: Customer, owner_id: int | None, actor: Actor) -> int | None:
    """Who owns a new deal: the owner given, else the customer's owner (a deal belongs with its
    account), else the person opening it; nobody when none of them is known (the CLI's admin)."""
    if owner_id is not None:
        return owner_id
    return customer.owner_id if customer.owner_id is not None else actor.user_id


def open_deal(session: Session, *, deal_in: DealCreate, actor: Actor, settings: Settings) -> Deal:
    actor.require_write()
    customer = get_customer(session, deal_in.customer_id)
    owner_id = deal_owner(customer, deal_in.owner_id, actor)
    if deal_in.owner_id is not None:
        # Naming someone else as the owner is a manager's call; taking the customer's owner is not.
        actor.require_owner(owner_id, "deal")
    check_owner(session, owner_id)
    stage = _stage(settings, deal_in.stage, open_only=True)
    now = utcnow()
    deal = Deal(
        customer_id=customer.id,  # type: ignore[arg-type]
        title=clean_text(deal_in.title, field="title", max_length=200, required=True) or "",
        amount=parse_money(deal_in.amount),
        currency=normalise_currency(deal_in.currency, settings.default_currency),
        stage=stage,
        owner_id=owner_id,
        expected_close_date=deal_in.expected_close_date,
        stage_entered_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(deal)
    session.flush()
    session.add(
        DealStageChange(
            deal_id=deal.id, from_stage=None, to_stage=stage, changed_at=now, changed_by=actor.name
        )
    )  # type: ignore[arg-type]
    record_event(
        session, actor=actor, action="open", entity="deal", entity_id=deal.id, after=snapshot(deal)
    )
    return deal


def close_date_warning(close: date | None, settings: Settings) -> str | None:
    """A note when an expected close date has passed already (in the team's zone): allowed,
    as a deal may be recorded late, but most often a typo."""
    if close is None:
        return None
    today = utcnow().astimezone(settings.tz).date()
    if close < today:
        return f"The expected close date {close.isoformat()} has passed already."
    return None


def _change_stage(
    session: Session,
    deal: Deal,
    stage: str,
    actor: Actor,
    action: str,
    lost_reason: str | None = None,
) -> Deal:
    before = snapshot(deal)
    now = utcnow()
    session.add(
        DealStageChange(
            deal_id=deal.id,
            from_stage=deal.stage,
            to_stage=stage,
            changed_at=now,
            changed_by=actor.name,
        )
    )  # type: ignore[arg-type]
    deal.stage = stage
    deal.stage_entered_at = now
    deal.updated_at = now
    if stage == WON_STAGE:
        deal.status, deal.closed_at, deal.lost_reason = DealStatus.won, now, None
    elif stage == LOST_STAGE:
        deal.status, deal.closed_at, deal.lost_reason = DealStatus.lost, now, lost_reason
    else:
        deal.status, deal.closed_at, deal.lost_reason = DealStatus.open, None, None
    session.add(deal)
    session.flush()
    record_event(
        session,
        actor=actor,
        action=action,
        entity="deal",
        entity_id=deal.id,
        before=before,
        after=snapshot(deal),
    )
    return deal


def move_deal(
    session: Session,
    *,
    deal_id: int,
    stage: str,
    actor: Actor,
    settings: Settings,
    reopen: bool = False,
) -> Deal:
    """Move a deal to a stage. A won or lost deal goes back to an open stage only with
    ``reopen``: a closed deal reopened by a slip would drop out of the won figures unseen."""
    deal = get_deal(session, deal_id, for_update=True)
    actor.require_owner(deal.owner_id, "deal")
    target = _stage(settings, stage, open_only=False)
    if target == LOST_STAGE:
        raise CRMError("A lost deal needs a reason.", hint=f"Use `deal {deal_id} lost <reason>`.")
    if target == deal.stage:
        raise CRMError(f"Deal #{deal_id} is already in {target}.")
    if deal.status != DealStatus.open and target != WON_STAGE and not reopen:
        closed = DealStatus(deal.status).value
        raise CRMError(
            f"Deal #{deal_id} is {closed}; moving it to {target} would reopen it.",
            hint=f"To reopen it, say so: `crmbot deal move {deal_id} {target} --reopen`, or "
            f"`/crm deal {deal_id} reopen {target}` in Slack.",
        )
    action = (
        "win" if target == WON_STAGE else ("reopen" if deal.status != DealStatus.open else "move")
    )
    return _change_stage(session, deal, target, actor, action)


def win_deal(session: Session, *, deal_id: int, actor: Actor, settings: Settings) -> Deal:
    deal = get_deal(session, deal_id, for_update=True)
    actor.require_owner(deal.owner_id, "deal")
    if deal.status == DealStatus.won:
        raise CRMError(f"Deal #{deal_id} is already won.")
    return _change_stage(session, deal, WON_STAGE, actor, "win")


def lose_deal(
    session: Session, *, deal_id: int, reason: str, actor: Actor, settings: Settings
) -> Deal:
    deal = get_deal(session, deal_id, for_update=True)
    actor.require_owner(deal.owner_id, "deal")
    text = clean_text(reason, field="lost reason", max_length=500, required=True)
    if deal.status == DealStatus.lost:
        raise CRMError(f"Deal #{deal_id} is already lost.")
    return _change_stage(session, deal, LOST_STAGE, actor, "lose", lost_reason=text)


def update_deal(
    session: Session,
    *,
    deal_id: int,
    actor: Actor,
    settings: Settings,
    title: str | None = None,
    amount: object = None,
    currency: str | None = None,
    expected_close_date: date | None = None,
    owner_id: int | None = None,
) -> Deal:
    deal = get_deal(session, deal_id, for_update=True)
    actor.require_owner(deal.owner_id, "deal")
    before = snapshot(deal)
    if title is not None:
        deal.title = clean_text(title, field="title", max_length=200, required=True) or deal.title
    if amount is not None:
        deal.amount = parse_money(amount)
    if currency is not None:
        deal.currency = normalise_currency(currency, settings.default_currency)
    if expected_close_date is not None:
        deal.expected_close_date = expected_close_date
    if owner_id is not None and owner_id != deal.owner_id:
        actor.require_manager("give a deal to someone else")
        check_owner(session, owner_id)
        deal.owner_id = owner_id
    deal.updated_at = utcnow()
    session.add(deal)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="update",
        entity="deal",
        entity_id=deal.id,
        before=before,
        after=snapshot(deal),
    )
    return deal


def _deals_where(
    stmt: Any,
    *,
    owner_id: int | None,
    stage: str | None,
    status: DealStatus | None,
    customer_id: int | None,
) -> Any:
    if owner_id is not None:
        stmt = stmt.where(Deal.owner_id == owner_id)
    if stage is not None:
        stmt = stmt.where(Deal.stage == stage)
    if status is not None:
        stmt = stmt.where(Deal.status == status)
    if customer_id is not None:
        stmt = stmt.where(Deal.customer_id == customer_id)
    return stmt


def list_deals(
    session: Session,
    *,
    owner_id: int | None = None,
    stage: str | None = None,
    status: DealStatus | None = DealStatus.open,
    customer_id: int | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> list[Deal]:
    """Deals, the soonest expected to close first; ``limit=None`` for all of them."""
    stmt = _deals_where(
        select(Deal), owner_id=owner_id, stage=stage, status=status, customer_id=customer_id
    )
    stmt = stmt.order_by(
        col(Deal.expected_close_date).is_(None), col(Deal.expected_close_date), col(Deal.id)
    )
    return list(session.exec(stmt.offset(offset).limit(limit)))


def count_deals(
    session: Session,
    *,
    owner_id: int | None = None,
    stage: str | None = None,
    status: DealStatus | None = DealStatus.open,
    customer_id: int | None = None,
) -> int:
    """How many deals ``list_deals`` would give without a limit."""
    stmt = _deals_where(
        select(func.count()).select_from(Deal),
        owner_id=owner_id,
        stage=stage,
        status=status,
        customer_id=customer_id,
    )
    return int(session.exec(stmt).one())


def stage_history(session: Session, deal_id: int) -> list[DealStageChange]:
    stmt = (
        select(DealStageChange)
        .where(DealStageChange.deal_id == deal_id)
        .order_by(col(DealStageChange.id))
    )
    return list(session.exec(stmt))
