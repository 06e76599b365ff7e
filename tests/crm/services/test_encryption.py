"""Encryption at rest: sealed columns, lookups by keyed hash, key rotation, the stored form."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from crm import crypto
from crm.db import Database
from crm.models import Channel, CustomerCreate, Direction, Interaction, InteractionCreate
from crm.models.base import SealedValueError
from crm.services import customers as customer_svc
from crm.services import keys as keys_svc
from crm.services.actor import Actor
from crm.services.audit import verify_chain
from crm.services.errors import CRMError, PermissionDenied
from crm.services.followups import create_follow_up
from crm.services.interactions import record_interaction
from tests.conftest import make_user

KEY_A = crypto.generate_key()
KEY_B = crypto.generate_key()
BODY = "Our warehouse code is zebra-quartz-4471, please keep it private"
PHONE = "+44 20 7946 0958"
STREET = "17 Larkspur Mews"
EMAIL = "olwen.pryce@larkspur-example.org"
NOTE = "ask about the marmalade contract renewal"
SECRETS = (b"zebra-quartz", b"442079460958", b"Larkspur Mews", b"olwen.pryce", b"marmalade")


def _world(db: Database, admin: Actor) -> tuple[int, int]:
    with db.transaction() as session:
        customer = customer_svc.create_customer(
            session,
            customer_in=CustomerCreate(
                name="Olwen Pryce",
                email=EMAIL,
                phone=PHONE,
                street=STREET,
                city="Leeds",
                postcode="LS1 4AP",
            ),
            actor=admin,
        )
        interaction, _ = record_interaction(
            session,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=customer.id,
                channel=Channel.email,
                direction=Direction.inbound,
                occurred_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
                subject="Warehouse access",
                author=f"Olwen Pryce <{EMAIL}>",
                body=BODY,
                meta={"signature": f"Olwen\n{PHONE}"},
            ),
        )
        create_follow_up(
            session,
            customer_id=customer.id,
            when="2026-12-20 10:00",
            actor=admin,
            tz="Europe/Berlin",
            note=NOTE,
        )
        return customer.id, interaction.id  # type: ignore[return-value]


def _stored_bytes(db: Database) -> bytes:
    """Everything the store holds on disk (SQLite file and log) or in a fresh pg_dump."""
    if db.dialect == "sqlite":
        db.flush_deleted()  # the log into the file
        path = Path(make_url(db.url).database or "")
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    url = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.run(["pg_dump", "--data-only", url], capture_output=True, check=True).stdout


def test_personal_data_is_not_in_the_stored_form_and_reads_back(db: Database, admin: Actor):
    crypto.use_keys([KEY_A])
    customer_id, interaction_id = _world(db, admin)
    stored = _stored_bytes(db)
    for secret in SECRETS:
        assert secret not in stored, (
            secret,
            stored[max(0, stored.find(secret) - 300) : stored.find(secret) + 60],
        )
    assert b"enc1:" + crypto.key_id(KEY_A).encode() in stored
    with db.session() as session:
        interaction = session.get(Interaction, interaction_id)
        assert interaction is not None
        assert interaction.body == BODY and interaction.meta == {"signature": f"Olwen\n{PHONE}"}
        card = customer_svc.customer_card(session, customer_id)
        assert {c.value for c in card.contacts} == {EMAIL, "+442079460958"}
        assert card.recent_interactions[0].preview.startswith("Our warehouse code")
        assert card.next_follow_up is not None and card.next_follow_up.note == NOTE
        assert card.customer.street == STREET


def test_without_keys_the_same_data_is_stored_plain(db: Database, admin: Actor):
    """The embedded default: nothing sealed, and the test above would fail on this store."""
    crypto.use_keys(None)
    _world(db, admin)
    stored = _stored_bytes(db)
    assert b"zebra-quartz" in stored and b"enc1:" not in stored


def test_lookups_by_email_and_phone_go_by_keyed_hash(db: Database, admin: Actor):
    crypto.use_keys([KEY_A])
    customer_id, _ = _world(db, admin)
    with db.session() as session:
        assert (
            customer_svc.find_by_email(session, "  OLWEN.Pryce@larkspur-example.org ").id
            == customer_id
        )  # type: ignore[union-attr]
        found = customer_svc.find_customers(session, EMAIL)
        assert [m.customer.id for m in found] == [customer_id]
        digest = keys_svc.contact_digest(session, "phone", "+44 (0)20 7946 0958".replace("(0)", ""))
        row = session.execute(
            sa.text("SELECT customer_id, value FROM contact_points WHERE digest = :d"),
            {"d": digest},
        ).one()
        assert row.customer_id == customer_id and row.value.startswith("enc1:")
    with db.transaction() as session, pytest.raises(CRMError, match="already belongs"):
        other = customer_svc.create_customer(
            session, customer_in=CustomerCreate(name="Someone Else"), actor=admin
        )
        customer_svc.add_contact_point(
            session,
            customer_id=other.id,
            kind="email",
            value=EMAIL.upper(),
            actor=admin,  # type: ignore[arg-type]
        )


def test_rotation_seals_plain_data_then_moves_it_to_a_new_key_in_resumable_batches(
    db: Database, admin: Actor
):
    crypto.use_keys(None)
    customer_id, interaction_id = _world(db, admin)  # written plain: no keys yet
    crypto.use_keys([KEY_A])
    with db.session() as session:
        before = {c.column: c for c in keys_svc.status(session)}
    assert before["interactions.body"].plain == 1 and before["interactions.body"].sealed == 0
    # One batch of one column, then stop: the rest is still plain, and reads work throughout.
    body = next(c for c in keys_svc.sealed_columns() if c.name == "interactions.body")
    with db.transaction() as session:
        first = keys_svc.rotate_batch(session, body, actor=admin, batch=1)
    assert first.rewritten == 1
    with db.session() as session:
        middle = {c.column: c for c in keys_svc.status(session)}
        assert session.get(Interaction, interaction_id).body == BODY  # type: ignore[union-attr]
    assert middle["interactions.body"].by_key == {crypto.key_id(KEY_A): 1}
    assert middle["customers.street"].plain == 1
    rest = list(keys_svc.rotate(db.transaction, actor_for=lambda s: admin, batch=2))
    with db.session() as session:
        after = keys_svc.status(session)
    assert all(c.plain == 0 for c in after), [c for c in after if c.plain]
    stored = _stored_bytes(db)
    for secret in SECRETS:
        assert secret not in stored, secret  # the plain pages are gone too, not only unread

    # A new first key: values move to it; the old key is then no longer needed.
    crypto.use_keys([KEY_B, KEY_A])
    batches = list(keys_svc.rotate(db.transaction, actor_for=lambda s: admin))
    assert sum(b.rewritten for b in batches) == sum(c.sealed for c in after)
    crypto.use_keys([KEY_B])
    with db.session() as session:
        assert {k for c in keys_svc.status(session) for k in c.by_key} == {crypto.key_id(KEY_B)}
        assert session.get(Interaction, interaction_id).body == BODY  # type: ignore[union-attr]
        assert customer_svc.find_by_email(session, EMAIL).id == customer_id  # type: ignore[union-attr]
        rotations = session.execute(
            sa.text("SELECT count(*) FROM audit_events WHERE action = 'keys.rotate'")
        ).scalar_one()
        assert verify_chain(session).ok  # re-encrypted payloads verify as written
    assert rotations == 1 + len(rest) + len(batches)  # one audit event per batch


def test_a_value_under_a_key_no_longer_set_says_which_key_is_missing(db: Database, admin: Actor):
    crypto.use_keys([KEY_A])
    _, interaction_id = _world(db, admin)
    crypto.use_keys([KEY_B])
    with db.session() as session, pytest.raises(SealedValueError, match=crypto.key_id(KEY_A)):
        session.get(Interaction, interaction_id)
    crypto.use_keys(None)
    with db.session() as session, pytest.raises(SealedValueError, match="CRM_ENCRYPTION_KEYS"):
        session.get(Interaction, interaction_id)


def test_a_changed_byte_in_a_sealed_value_is_refused(db: Database, admin: Actor):
    crypto.use_keys([KEY_A])
    _, interaction_id = _world(db, admin)
    with db.transaction() as session:
        stored = session.execute(
            sa.text("SELECT body FROM interactions WHERE id = :i"), {"i": interaction_id}
        ).scalar_one()
        flipped = stored[:-10] + ("A" if stored[-10] != "A" else "B") + stored[-9:]
        session.execute(
            sa.text("UPDATE interactions SET body = :b WHERE id = :i"),
            {"b": flipped, "i": interaction_id},
        )
    with db.session() as session, pytest.raises(SealedValueError, match="integrity"):
        session.get(Interaction, interaction_id)


def test_rotation_needs_keys_and_an_admin(db: Database, admin: Actor):
    crypto.use_keys(None)
    _world(db, admin)
    column = keys_svc.sealed_columns()[0]
    with db.transaction() as session, pytest.raises(CRMError, match="CRM_ENCRYPTION_KEYS"):
        keys_svc.rotate_batch(session, column, actor=admin)
    crypto.use_keys([KEY_A])
    _, rep = make_user(db, "Rita Rep", "rep")  # type: ignore[arg-type]
    with db.transaction() as session, pytest.raises(PermissionDenied):
        keys_svc.rotate_batch(session, column, actor=rep)


def test_a_value_changed_during_rotation_is_left_to_its_writer(db: Database, admin: Actor):
    """Rotation writes a value only where it still holds what rotation read."""
    crypto.use_keys(None)
    _, interaction_id = _world(db, admin)
    crypto.use_keys([KEY_A])
    body = next(c for c in keys_svc.sealed_columns() if c.name == "interactions.body")
    table = Interaction.__table__  # type: ignore[attr-defined]
    original_execute = None

    def edit_first(session, statement, *args, **kwargs):  # type: ignore[no-untyped-def]
        # Just before rotation's first write, another writer changes the body.
        if isinstance(statement, sa.Update) and not edited:
            edited.append(True)
            with db.transaction() as other:
                other.execute(
                    sa.update(table).where(table.c.id == interaction_id).values(body="changed")
                )
        return original_execute(session, statement, *args, **kwargs)  # type: ignore[misc]

    edited: list[bool] = []
    if db.dialect == "sqlite":
        pytest.skip("one writer at a time on SQLite: no other writer can come in between")
    from sqlmodel import Session

    original_execute = Session.execute
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Session, "execute", edit_first)
        with db.transaction() as session:
            done = keys_svc.rotate_batch(session, body, actor=admin)
    assert (done.rewritten, done.skipped) == (0, 1)
    with db.session() as session:
        assert session.get(Interaction, interaction_id).body == "changed"  # type: ignore[union-attr]


def test_keys_commands(crmbot, db: Database, admin: Actor, monkeypatch: pytest.MonkeyPatch):
    crypto.use_keys(None)
    monkeypatch.delenv("CRM_ENCRYPTION_KEYS", raising=False)
    code, out, err = crmbot("keys", "generate")
    assert code == 0
    key = out.strip()
    crypto.Keyring([key])  # a valid Fernet key
    assert crypto.key_id(key) in err
    _world(db, admin)
    code, out, _ = crmbot("keys", "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["encrypted"] is False and status["plain"] > 0
    monkeypatch.setenv("CRM_ENCRYPTION_KEYS", key)
    code, out, _ = crmbot("keys", "rotate", "--json")
    assert code == 0 and json.loads(out)["rewritten"] == status["plain"]
    code, out, _ = crmbot("keys", "status", "--json")
    status = json.loads(out)
    assert status["encrypted"] and status["plain"] == 0 and status["under_other_keys"] == 0
    monkeypatch.setenv("CRM_ENCRYPTION_KEYS", "not-a-key")
    code, _, err = crmbot("keys", "status")
    assert code == 2 and "not a Fernet key" in err and "not-a-key" not in err


def test_start_up_says_when_data_is_not_encrypted(caplog: pytest.LogCaptureFixture):
    crypto.use_keys(None)
    assert crypto.warn_if_plain() is True
    assert "unencrypted" in caplog.text and "CRM_ENCRYPTION_KEYS" in caplog.text
    caplog.clear()
    crypto.use_keys([KEY_A])
    assert crypto.warn_if_plain() is False
    assert caplog.text == ""


def test_text_that_only_looks_encrypted_is_text(db: Database, admin: Actor):
    crypto.use_keys(None)
    customer_id, _ = _world(db, admin)
    odd = "enc1:deadbeef: is how the log line started"
    for keys in (None, [KEY_A]):
        crypto.use_keys(keys)
        with db.transaction() as session:
            row, _ = record_interaction(
                session,
                actor=admin,
                interaction_in=InteractionCreate(
                    customer_id=customer_id, channel=Channel.note, body=odd
                ),
            )
        with db.session() as session:
            assert session.get(Interaction, row.id).body == odd  # type: ignore[union-attr]


def test_what_refreshes_merges_and_set_aside_mail_store_about_a_person_is_sealed(
    db: Database, admin: Actor, tmp_path: Path
):
    """Findings quote subjects and notes, a merge keeps the kept customer's address, a set-aside
    mail's reason names its sender: with keys set, none of it is in the stored form."""
    from crm.analytics.refresh import refresh
    from crm.config import Settings
    from crm.models import Finding
    from crm.services import merges
    from crm.services.mail_capture import CapturePolicy, IncomingMail, MailAddress, capture_mails

    crypto.use_keys([KEY_A])
    customer_id, _ = _world(db, admin)  # follow-up note NOTE, due 2026-12-20
    with db.transaction() as session:
        bryn = customer_svc.create_customer(
            session, customer_in=CustomerCreate(name="Bryn Ellis"), actor=admin
        )
        record_interaction(
            session,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=bryn.id,
                channel=Channel.email,
                direction=Direction.inbound,
                occurred_at=datetime(2026, 12, 21, 9, 0, tzinfo=UTC),
                subject="gate codes 7741-kestrel",
                body="Which gate?",
            ),
        )
        twin = customer_svc.create_customer(
            session, customer_in=CustomerCreate(name="Olwen P."), actor=admin
        )
        _, merge = customer_svc.merge_with_record(
            session,
            keep_id=customer_id,
            merge_id=twin.id,
            actor=admin,  # type: ignore[arg-type]
        )
        stranger = IncomingMail(
            source="imap:support",
            content_hash="hash-q1",
            raw=b"raw",
            raw_size=3,
            message_id="q1@example.net",
            from_=MailAddress("Quince Baxter", "quince.baxter@example.net"),
            to=[MailAddress("", "support@ourco.com")],
            subject="Hello",
            new_text="Hi",
            date=datetime(2026, 12, 21, tzinfo=UTC),
        )
        policy = CapturePolicy(internal_domains=("ourco.com",), unknown_sender="quarantine")
        [held] = capture_mails(session, mails=[stranger], policy=policy, actor=admin)
        assert "quince.baxter@example.net" in (held.reason or "")
    settings = Settings(_env_file=None, database_url=db.url, model_dir=str(tmp_path))  # type: ignore[call-arg]
    refresh(db, settings=settings, actor=admin, cutoff=datetime(2026, 12, 28, tzinfo=UTC))

    stored = _stored_bytes(db)
    # (Topic terms keep words of the conversations readable, but none with a digit.)
    words = (b"zebra-quartz-4471", b"7741-kestrel", b"quince.baxter")
    for secret in (*SECRETS[1:], *words):
        assert secret not in stored, (
            secret,
            stored[max(0, stored.find(secret) - 300) : stored.find(secret) + 60],
        )
    with db.session() as session:
        why = {f.kind: f.why for f in session.exec(sa.select(Finding)).scalars()}  # type: ignore[call-overload]
    assert NOTE in why["overdue_follow_up"]
    assert "gate codes 7741-kestrel" in why["unanswered_email"]
    with db.transaction() as session:
        merges.unmerge_customers(session, merge_id=merge.id, actor=admin)  # type: ignore[arg-type]
        assert customer_svc.customer_card(session, customer_id).customer.street == STREET
