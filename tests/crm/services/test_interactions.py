from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlmodel import select

from crm.models import AuditEvent, Interaction, InteractionCreate
from crm.services import interactions
from crm.services.errors import CRMError
from tests.factories import add_customer, add_deal


def _mail(customer_id: int, external_id: str | None = "<m1@acme.com>", **extra):
    return InteractionCreate(
        customer_id=customer_id,
        channel="email",
        direction="inbound",
        subject="Hello",
        body="Hi there",
        source="imap:support",
        external_id=external_id,
        occurred_at=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
        **extra,
    )


def test_recording_the_same_external_id_twice_stores_it_once(db, admin):
    customer = add_customer(db, admin)
    with db.transaction() as s:
        first, created = interactions.record_interaction(
            s, interaction_in=_mail(customer.id), actor=admin
        )
    with db.transaction() as s:
        again, created_again = interactions.record_interaction(
            s, interaction_in=_mail(customer.id), actor=admin
        )
    assert created and not created_again and again.id == first.id
    with db.session() as s:
        assert len(s.exec(select(Interaction)).all()) == 1
        assert len(s.exec(select(AuditEvent).where(AuditEvent.entity == "interaction")).all()) == 1
        stored = s.get(Interaction, first.id)
        assert stored.occurred_at == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def test_same_external_id_from_another_source_is_another_interaction(db, admin):
    customer = add_customer(db, admin)
    with db.transaction() as s:
        interactions.record_interaction(s, interaction_in=_mail(customer.id), actor=admin)
        other = _mail(customer.id)
        other.source = "imap:sales"
        _, created = interactions.record_interaction(s, interaction_in=other, actor=admin)
    assert created


def test_purchases_need_an_amount_and_deals_must_match(db, admin, settings):
    jane = add_customer(db, admin)
    bob = add_customer(db, admin, "Bob", "bob@initech.com")
    bobs_deal = add_deal(db, admin, settings, bob.id)
    with db.transaction() as s, pytest.raises(CRMError, match="amount"):
        interactions.record_interaction(
            s,
            actor=admin,
            interaction_in=InteractionCreate(customer_id=jane.id, channel="purchase"),
        )
    with db.transaction() as s, pytest.raises(CRMError, match="does not belong"):
        interactions.record_interaction(
            s, actor=admin, interaction_in=_mail(jane.id, deal_id=bobs_deal.id)
        )
    with db.transaction() as s:
        purchase, _ = interactions.record_interaction(
            s,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=jane.id,
                channel="purchase",
                direction="inbound",
                amount=Decimal("19.99"),
            ),
        )
    assert purchase.amount == Decimal("19.99") and purchase.currency == "USD"


def test_unknown_customer_is_an_error(db, admin):
    with db.transaction() as s, pytest.raises(CRMError, match="no customer #4242"):
        interactions.record_interaction(s, actor=admin, interaction_in=_mail(4242))


def test_huge_bodies_are_capped_with_a_note(db, admin):
    customer = add_customer(db, admin)
    with db.transaction() as s:
        item, _ = interactions.record_interaction(
            s,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=customer.id, channel="note", body="x" * 250_000
            ),
        )
    assert (
        len(item.body) == interactions.MAX_BODY_CHARS
        and item.meta["truncated_from_chars"] == 250_000
    )


def test_edit_and_delete_at_the_source(db, admin):
    customer = add_customer(db, admin)
    with db.transaction() as s:
        interactions.record_interaction(s, interaction_in=_mail(customer.id), actor=admin)
    with db.transaction() as s:
        edited = interactions.update_interaction_body(
            s, source="imap:support", external_id="<m1@acme.com>", body="Edited", actor=admin
        )
        assert edited.body == "Edited"
        interactions.mark_interaction_deleted(
            s, source="imap:support", external_id="<m1@acme.com>", actor=admin
        )
    with db.session() as s:
        assert interactions.timeline(s, customer_id=customer.id) == []
        assert (
            interactions.update_interaction_body(
                s, source="x", external_id="nope", body="", actor=admin
            )
            is None
        )


def test_timeline_is_newest_first(db, admin):
    customer = add_customer(db, admin)
    with db.transaction() as s:
        for day in (3, 1, 2):
            interactions.record_interaction(
                s,
                actor=admin,
                interaction_in=InteractionCreate(
                    customer_id=customer.id,
                    channel="note",
                    body=f"day {day}",
                    occurred_at=datetime(2026, 1, day, tzinfo=UTC),
                ),
            )
    with db.session() as s:
        assert [i.body for i in interactions.timeline(s, customer_id=customer.id)] == [
            "day 3",
            "day 2",
            "day 1",
        ]
