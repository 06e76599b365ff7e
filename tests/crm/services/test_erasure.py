"""Erasure on request: after `forget`, the person's email, name and phone are nowhere in the
store (the SQLite file after VACUUM, or a pg_dump); deal amounts stay; the audit chain still
verifies; mail from them is not captured again. Export gives everything held about them."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import select

from crm.db import Database
from crm.models import (
    AuditEvent,
    Channel,
    Customer,
    Deal,
    DigestRun,
    Direction,
    InteractionCreate,
    QuarantinedMessage,
    Role,
)
from crm.services import audit as audit_svc
from crm.services import erasure, followups, interactions
from crm.services.errors import CRMError, PermissionDenied
from crm.services.mail_capture import (
    CaptureOutcome,
    CapturePolicy,
    IncomingMail,
    MailAddress,
    capture_mails,
)
from tests.conftest import make_user
from tests.factories import add_customer, add_deal, add_scoring_run

NAME = "Zelda Quimbyworth"
EMAIL = "zelda.quimbyworth@quimby-widgets.test"
PHONE = "+44 20 7946 0123"
PHONE_STORED = "+442079460123"
SECRETS = (NAME, EMAIL, PHONE, PHONE_STORED, "Quimbyworth")
POLICY = CapturePolicy(internal_domains=("ourco.com",), unknown_sender="create_lead")


def _mail(mid: str, text: str) -> IncomingMail:
    return IncomingMail(
        source="imap:support",
        content_hash=f"hash-{mid}",
        raw=f"From: {NAME} <{EMAIL}>\r\n\r\n{text}".encode(),
        raw_size=40,
        message_id=mid,
        from_=MailAddress(NAME, EMAIL),
        to=[MailAddress("", "support@ourco.com")],
        subject=f"Order for {NAME}",
        new_text=text,
        date=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    )


def _person_everywhere(db: Database, admin, settings) -> tuple[int, int, int]:
    """A person with every kind of record, and a bystander. Returns (person, deal, bystander)."""
    person = add_customer(db, admin, name=NAME, email=EMAIL, phone=PHONE, company="Quimby Widgets")
    other = add_customer(db, admin, name="Bob Bystander", email="bob@initech.com")
    deal = add_deal(
        db, admin, settings, person.id, title=f"{NAME} annual plan", amount=Decimal("1234.50")
    )
    with db.transaction() as session:
        assert (
            capture_mails(
                session,
                mails=[_mail("<m1@q.test>", f"Call me on {PHONE}")],
                policy=POLICY,
                actor=admin,
            )[0].outcome
            == CaptureOutcome.stored
        )
        interactions.record_interaction(
            session,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=person.id,
                channel=Channel.purchase,
                direction=Direction.inbound,
                subject=f"Invoice for {NAME}",
                amount=Decimal("99.00"),
                currency="USD",
                source="shop",
                external_id="order-77",
            ),
        )
        followups.create_follow_up(
            session,
            customer_id=person.id,
            when=datetime.now(UTC) + timedelta(days=2),
            actor=admin,
            tz="UTC",
            note=f"ring {NAME} back",
        )
        session.add(
            DigestRun(
                job="churn",
                period="2026-W10",
                recipient="email:ann@ourco.com",
                status="sent",
                meta={"names": [NAME], "as_of": "2026-03-02"},
            )
        )
        session.add(
            QuarantinedMessage(
                source="imap:support",
                external_id="<q1@q.test>",
                reason="test",
                raw=f"From: {EMAIL}\r\n\r\nhello".encode(),
            )
        )
    add_scoring_run(
        db,
        [person.id, other.id],
        [0.7, 0.2],
        finished=datetime.now(UTC),
        reasons=[[f"{NAME} went quiet"], ["quiet"]],
    )
    # A duplicate merged into them (the merge keeps both as they were, to undo it), a campaign
    # that mailed them and their opt-out from the next one.
    from crm.models import CampaignOptOut
    from crm.services import campaigns, customers

    twin = add_customer(db, admin, name=f"{NAME} (old)", email=f"old.{EMAIL}")
    with db.transaction() as session:
        customers.merge_with_record(session, keep_id=person.id, merge_id=twin.id, actor=admin)
        campaigns.create_campaign(
            session,
            name="spring",
            customer_ids=[person.id, other.id],
            audience={"filter": "status=lead"},
            subject="Hi",
            template="Hello",
            holdout=0.5,
            window_days=14,
            actor=admin,
            seed=1,
        )
        from crm.services.campaigns import opt_out

        opt_out(session, email=EMAIL, actor=admin)
    return person.id, deal.id, other.id


def _store_bytes(db: Database) -> bytes:
    """Every byte the store keeps: the SQLite file after VACUUM, or a fresh pg_dump."""
    if db.dialect == "sqlite":
        db.flush_deleted()
        raw = db.engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM")
        finally:
            raw.close()
        path = Path(make_url(db.url).database)
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    url = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(["pg_dump", "--no-owner", url], check=True, capture_output=True).stdout


def test_after_forget_the_person_is_nowhere_and_the_accounts_and_chain_hold(db, admin, settings):
    from crm import crypto

    crypto.use_keys(None)  # the person must be in the store in plain text first
    person, deal, other = _person_everywhere(db, admin, settings)
    before = _store_bytes(db)
    assert all(s.encode() in before for s in (NAME, EMAIL, PHONE_STORED))  # the check can fail

    with db.transaction() as session:
        key = erasure.hashing_key(session, None)
        result = erasure.forget_customer(
            session, actor=admin, customer_id=person, reason="asked by email on 2026-12-01", key=key
        )
    assert result.customer == "anonymised" and result.kept == {
        "deals": 1,
        "purchases": 1,
        "campaign_memberships": 1,
    }
    assert result.removed["interactions"] == 1 and result.removed["quarantined_mail"] == 1
    dump = _store_bytes(db)
    for secret in SECRETS:
        assert secret.encode() not in dump, secret
        assert secret.lower().encode() not in dump.lower(), secret

    with db.session() as session:
        assert audit_svc.verify_chain(session).ok
        kept_deal = session.get(Deal, deal)
        assert kept_deal.amount == Decimal("1234.50") and kept_deal.title == f"Deal #{deal}"
        assert session.get(Customer, other).name == "Bob Bystander"  # a bystander is untouched
        tomb = session.exec(select(AuditEvent).where(AuditEvent.action == "forget")).one()
    assert tomb.actor == admin.name and tomb.entity_id == str(person)
    assert tomb.after["reason"] == "asked by email on 2026-12-01"
    assert {"contact_points", "interactions", "follow_ups"} <= set(tomb.after["removed"])
    assert tomb.after["scrubbed_events"]


def test_mail_from_a_forgotten_address_is_not_captured_again(db, admin, settings):
    person, _, _ = _person_everywhere(db, admin, settings)
    with db.transaction() as session:
        erasure.forget_customer(
            session,
            actor=admin,
            customer_id=person,
            reason="request",
            key=erasure.hashing_key(session, None),
        )
    with db.transaction() as session:
        result = capture_mails(
            session, mails=[_mail("<m2@q.test>", "me again")], policy=POLICY, actor=admin
        )[0]
    assert result.outcome == CaptureOutcome.ignored and "erased" in result.reason
    assert EMAIL.encode() not in _store_bytes(db)
    # Configurable: with the block off, the mail makes a new lead as any unknown sender does.
    open_policy = CapturePolicy(internal_domains=("ourco.com",), skip_forgotten=False)
    with db.transaction() as session:
        result = capture_mails(
            session, mails=[_mail("<m3@q.test>", "hello")], policy=open_policy, actor=admin
        )[0]
    assert result.outcome == CaptureOutcome.stored


def test_only_admins_forget_and_a_refusal_writes_nothing(db, admin, settings):
    person, _, _ = _person_everywhere(db, admin, settings)
    _, manager = make_user(db, "Mona", Role.manager)
    with db.session() as session:
        events = session.exec(select(sa.func.count()).select_from(AuditEvent)).one()
    with pytest.raises(PermissionDenied), db.transaction() as session:
        erasure.forget_customer(
            session,
            actor=manager,
            customer_id=person,
            reason="x",
            key=erasure.hashing_key(session, None),
        )
    with db.session() as session:
        assert session.get(Customer, person).name == NAME
        assert session.exec(select(sa.func.count()).select_from(AuditEvent)).one() == events


def test_export_gives_everything_held_about_the_person(db, admin, settings):
    person, deal, _ = _person_everywhere(db, admin, settings)
    with db.session() as session:
        data = erasure.export_customer(session, actor=admin, customer_id=person)
    assert data["customer"]["name"] == NAME
    assert {p["value"] for p in data["contact_points"]} == {EMAIL, f"old.{EMAIL}", PHONE_STORED}
    assert [m["arm"] for m in data["campaigns"]] and len(data["merges"]) == 1
    assert [d["id"] for d in data["deals"]] == [deal] and data["deal_stage_changes"]
    assert {i["channel"] for i in data["interactions"]} == {"email", "purchase"}
    assert any(PHONE in i["body"] for i in data["interactions"])
    assert data["follow_ups"][0]["note"] == f"ring {NAME} back"
    assert data["analytics"]["churn_scores"][0]["probability"] == 0.7
    assert {e["entity"] for e in data["audit_events"]} >= {"customer", "deal", "interaction"}


def test_an_erasure_names_the_person_exactly_never_by_a_fuzzy_guess(db, admin):
    c = add_customer(db, admin, name="Quentin Exactly", email="quentin@exact.test")
    with db.session() as session:
        assert erasure.resolve_exactly(session, "quentin@exact.test").id == c.id
        assert erasure.resolve_exactly(session, f"#{c.id}").id == c.id
        for fuzzy in ("Quentin Exactly", "Quentin Exactyl", "exact.test"):
            with pytest.raises(CRMError, match="exactly"):
                erasure.resolve_exactly(session, fuzzy)


def test_with_encryption_on_forget_finds_the_person_inside_encrypted_audit_payloads(
    db, admin, settings
):
    """Encrypted payloads are opaque to SQL: erasure reads them to find the person named in
    events about other records (here a note on the store naming their address)."""
    import json

    from crm import crypto

    crypto.use_keys([crypto.generate_key()])
    person, _, _ = _person_everywhere(db, admin, settings)
    with db.transaction() as session:
        audit_svc.record_event(
            session, actor=admin, action="note", entity="store",
            after={"text": f"{NAME} asked us to call {PHONE_STORED}"},
        )
        mentioned = session.exec(select(AuditEvent).where(AuditEvent.action == "note")).one().id
    with db.transaction() as session:
        erasure.forget_customer(
            session, actor=admin, customer_id=person, reason="asked by email",
            key=erasure.hashing_key(session, None),
        )
    with db.session() as session:
        events = session.exec(select(AuditEvent)).all()
        assert audit_svc.verify_chain(session).ok
    texts = {e.id: json.dumps([e.before, e.after], ensure_ascii=False).lower() for e in events}
    assert erasure.audit.ERASED_KEY in texts[mentioned]
    for secret in SECRETS:
        assert not [i for i, t in texts.items() if secret.lower() in t], secret


def test_an_event_naming_the_person_written_while_the_trail_is_scanned_is_scrubbed_too(
    db, admin, settings, monkeypatch
):
    """On PostgreSQL the encrypted trail is scanned before the chain's lock is taken; an event
    committed between that scan and the lock is read under the lock."""
    import json

    from crm import crypto

    if db.dialect == "sqlite":
        pytest.skip("one writer at a time on SQLite: no other writer can come in between")
    crypto.use_keys([crypto.generate_key()])
    person, _, _ = _person_everywhere(db, admin, settings)
    lock_chain = erasure.audit.lock_chain
    late: list[int] = []

    def lock_after_another_writer(session):
        if not late:
            with db.transaction() as other:
                event = audit_svc.record_event(
                    other, actor=admin, action="note", entity="store",
                    after={"text": f"call {NAME} back on {PHONE_STORED}"},
                )
                other.flush()
                late.append(event.id)
        return lock_chain(session)

    monkeypatch.setattr(erasure.audit, "lock_chain", lock_after_another_writer)
    with db.transaction() as session:
        erasure.forget_customer(
            session, actor=admin, customer_id=person, reason="asked by email",
            key=erasure.hashing_key(session, None),
        )
    with db.session() as session:
        assert audit_svc.verify_chain(session).ok
        event = session.get(AuditEvent, late[0])
        assert event is not None
        text = json.dumps([event.before, event.after], ensure_ascii=False).lower()
    assert erasure.audit.ERASED_KEY in text and NAME.lower() not in text
