"""Merges recorded with what moved, undone with both customers back as they were."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from crm.models import (
    AuditEvent,
    ContactPoint,
    Customer,
    CustomerStatus,
    Interaction,
    utcnow,
)
from crm.services import customers, merges
from crm.services.errors import CRMError, NotFound
from tests.factories import add_customer, add_deal, add_follow_up


def _interaction(session, customer_id, author, deal_id=None):
    row = Interaction(
        customer_id=customer_id,
        deal_id=deal_id,
        channel="email",
        direction="inbound",
        occurred_at=utcnow(),
        body="hello",
        author=author,
    )
    session.add(row)
    session.flush()
    return row.id


def test_a_merge_is_undone_with_both_customers_and_their_records_back(db, admin, settings):
    kept = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    gone = add_customer(
        db,
        admin,
        "J. Doe",
        "jdoe@home.net",
        company="Acme",
        status=CustomerStatus.active,
        street="1 High St",
        city="Leeds",
        tags=["vip"],
    )
    deal = add_deal(db, admin, settings, gone.id)
    follow_up = add_follow_up(db, gone.id, None)
    with db.transaction() as session:
        old_mail = _interaction(session, gone.id, "J <jdoe@home.net>")
        _, record = customers.merge_with_record(
            session, keep_id=kept.id, merge_id=gone.id, actor=admin
        )
        merge_id = record.id
    with db.transaction() as session:
        merged = session.get(Customer, kept.id)
        assert merged.company == "Acme" and merged.city == "Leeds" and merged.tags == ["vip"]
        assert session.get(Customer, gone.id) is None
        # Recorded after the merge: a mail from the merged-away address, and one from the kept.
        later_theirs = _interaction(session, kept.id, "jdoe@home.net")
        later_ours = _interaction(session, kept.id, "jane@acme.com")
    with db.transaction() as session:
        merges.unmerge_customers(session, merge_id=merge_id, actor=admin)
    with db.session() as session:
        back = session.get(Customer, gone.id)
        kept_now = session.get(Customer, kept.id)
        assert (back.name, back.company, back.status, back.city, back.tags) == (
            "J. Doe",
            "Acme",
            CustomerStatus.active,
            "Leeds",
            ["vip"],
        )
        assert (kept_now.company, kept_now.city, kept_now.tags) == (None, None, None)
        owners = {p.value: p.customer_id for p in session.exec(select(ContactPoint)).all()}
        assert owners == {"jane@acme.com": kept.id, "jdoe@home.net": gone.id}
        where = {i.id: i.customer_id for i in session.exec(select(Interaction)).all()}
        assert where == {old_mail: gone.id, later_theirs: gone.id, later_ours: kept.id}
        assert customers.get_customer(session, gone.id).id == gone.id
        from crm.models import Deal, FollowUp

        assert session.get(Deal, deal.id).customer_id == gone.id
        assert session.get(FollowUp, follow_up.id).customer_id == gone.id
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "unmerge")).one()
        assert event.after["merge_id"] == merge_id


def test_undoing_twice_an_unknown_merge_or_merging_with_itself_writes_nothing(db, admin):
    kept = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    gone = add_customer(db, admin, "Jane D", "jd@acme.com")
    with db.transaction() as session:
        merge_id = customers.merge_with_record(
            session, keep_id=kept.id, merge_id=gone.id, actor=admin
        )[1].id
    with db.transaction() as session:
        merges.unmerge_customers(session, merge_id=merge_id, actor=admin)
    with db.session() as session:
        events = len(session.exec(select(AuditEvent)).all())
    for call, error in (
        (lambda s: merges.unmerge_customers(s, merge_id=merge_id, actor=admin), CRMError),
        (lambda s: merges.unmerge_customers(s, merge_id=999, actor=admin), NotFound),
        (
            lambda s: customers.merge_with_record(
                s, keep_id=kept.id, merge_id=kept.id, actor=admin
            ),
            CRMError,
        ),
    ):
        with pytest.raises(error), db.transaction() as session:
            call(session)
    with db.session() as session:
        assert len(session.exec(select(AuditEvent)).all()) == events
        assert session.get(Customer, gone.id) is not None


def test_a_field_edited_after_the_merge_keeps_the_edit_on_undo(db, admin):
    kept = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    gone = add_customer(db, admin, "J. Doe", "jd@home.net", company="Acme", city="Leeds")
    with db.transaction() as session:
        merge_id = customers.merge_with_record(
            session, keep_id=kept.id, merge_id=gone.id, actor=admin
        )[1].id
    with db.transaction() as session:
        from crm.models import CustomerUpdate

        customers.update_customer(
            session, customer_id=kept.id, changes=CustomerUpdate(company="Acme Ltd"), actor=admin
        )
    with db.transaction() as session:
        merges.unmerge_customers(session, merge_id=merge_id, actor=admin)
    with db.session() as session:
        assert session.get(Customer, kept.id).company == "Acme Ltd"
        assert session.get(Customer, kept.id).city is None
        assert session.get(Customer, gone.id).created_at < utcnow() + timedelta(seconds=1)
