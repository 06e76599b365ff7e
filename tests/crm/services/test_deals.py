from __future__ import annotations

from decimal import Decimal

import pytest
from sqlmodel import select

from crm.models import AuditEvent, DealStatus, Role
from crm.services import deals
from crm.services.errors import CRMError, NotFound, PermissionDenied
from tests.conftest import make_user
from tests.factories import add_customer, add_deal


def test_open_deal_starts_in_the_first_stage_with_history(db, admin, settings):
    customer = add_customer(db, admin)
    deal = add_deal(db, admin, settings, customer.id, amount=Decimal("12500.5"), currency="eur")
    assert deal.stage == "lead" and deal.status == DealStatus.open
    assert deal.amount == Decimal("12500.50") and deal.currency == "EUR"
    with db.session() as s:
        history = deals.stage_history(s, deal.id)
    assert [(h.from_stage, h.to_stage) for h in history] == [(None, "lead")]


def test_moves_win_and_loss_keep_the_history_chain(db, admin, settings):
    customer = add_customer(db, admin)
    deal = add_deal(db, admin, settings, customer.id)
    with db.transaction() as s:
        deals.move_deal(s, deal_id=deal.id, stage="Qualified", actor=admin, settings=settings)
    with db.transaction() as s:
        deals.move_deal(s, deal_id=deal.id, stage="proposal", actor=admin, settings=settings)
    with db.transaction() as s:
        won = deals.win_deal(s, deal_id=deal.id, actor=admin, settings=settings)
    assert won.status == DealStatus.won and won.closed_at is not None
    other = add_deal(db, admin, settings, customer.id, "Second")
    with db.transaction() as s:
        lost = deals.lose_deal(
            s, deal_id=other.id, reason="  went with a competitor ", actor=admin, settings=settings
        )
    assert lost.status == DealStatus.lost and lost.lost_reason == "went with a competitor"
    with db.session() as s:
        history = deals.stage_history(s, deal.id)
        assert [(h.from_stage, h.to_stage) for h in history] == [
            (None, "lead"),
            ("lead", "qualified"),
            ("qualified", "proposal"),
            ("proposal", "won"),
        ]
        actions = [
            e.action
            for e in s.exec(
                select(AuditEvent).where(AuditEvent.entity == "deal").order_by(AuditEvent.id)
            )
        ]
        assert actions == ["open", "move", "move", "win", "open", "lose"]


def test_unknown_stage_lists_the_valid_ones(db, admin, settings):
    customer = add_customer(db, admin)
    deal = add_deal(db, admin, settings, customer.id)
    with db.transaction() as s, pytest.raises(CRMError) as info:
        deals.move_deal(s, deal_id=deal.id, stage="closing", actor=admin, settings=settings)
    assert "lead, qualified, proposal, negotiation, won, lost" in str(info.value)


def test_lost_needs_a_reason_and_same_stage_is_refused(db, admin, settings):
    customer = add_customer(db, admin)
    deal = add_deal(db, admin, settings, customer.id)
    with db.transaction() as s, pytest.raises(CRMError, match="needs a reason"):
        deals.move_deal(s, deal_id=deal.id, stage="lost", actor=admin, settings=settings)
    with db.transaction() as s, pytest.raises(CRMError):
        deals.lose_deal(s, deal_id=deal.id, reason="  ", actor=admin, settings=settings)
    with db.transaction() as s, pytest.raises(CRMError, match="already in lead"):
        deals.move_deal(s, deal_id=deal.id, stage="lead", actor=admin, settings=settings)
    with db.session() as s:
        assert len(deals.stage_history(s, deal.id)) == 1


def test_missing_deal_and_bad_amount(db, admin, settings):
    customer = add_customer(db, admin)
    with db.transaction() as s, pytest.raises(NotFound):
        deals.move_deal(s, deal_id=999, stage="won", actor=admin, settings=settings)
    with pytest.raises(CRMError):
        add_deal(db, admin, settings, customer.id, amount=Decimal("-5"))
    with pytest.raises(CRMError):
        add_deal(db, admin, settings, customer.id, currency="EURO")


def test_reps_change_only_their_own_deals_managers_all(db, admin, settings):
    customer = add_customer(db, admin)
    _, rita = make_user(db, "Rita Rep", Role.rep)
    _, rob = make_user(db, "Rob Rep", Role.rep)
    _, mia = make_user(db, "Mia Manager", Role.manager)
    ritas = add_deal(db, rita, settings, customer.id)
    assert ritas.owner_id == rita.user_id
    with db.transaction() as s, pytest.raises(PermissionDenied):
        deals.move_deal(s, deal_id=ritas.id, stage="qualified", actor=rob, settings=settings)
    with db.transaction() as s:
        deals.move_deal(s, deal_id=ritas.id, stage="qualified", actor=rita, settings=settings)
    with db.transaction() as s:
        deals.move_deal(s, deal_id=ritas.id, stage="proposal", actor=mia, settings=settings)
    with pytest.raises(PermissionDenied):  # a rep cannot open a deal in someone else's name
        add_deal(db, rob, settings, customer.id, owner_id=rita.user_id)


def test_list_deals_filters(db, admin, settings):
    customer = add_customer(db, admin)
    a = add_deal(db, admin, settings, customer.id, "A")
    b = add_deal(db, admin, settings, customer.id, "B", stage="proposal")
    with db.transaction() as s:
        deals.win_deal(s, deal_id=a.id, actor=admin, settings=settings)
    with db.session() as s:
        assert [d.id for d in deals.list_deals(s)] == [b.id]
        assert [d.id for d in deals.list_deals(s, status=DealStatus.won)] == [a.id]
        assert [d.id for d in deals.list_deals(s, stage="proposal")] == [b.id]
