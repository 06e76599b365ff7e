from __future__ import annotations

import pytest
from sqlmodel import select

from crm.models import AuditEvent, Direction, Interaction, Role
from crm.services import slack_capture as capture
from crm.services.actor import Actor
from crm.services.errors import CRMError, NotFound, PermissionDenied
from tests.conftest import make_user
from tests.factories import add_customer, add_deal

BOT = Actor.system("slack:capture")


def _msg(**kw):
    base = dict(channel="C1", ts="1700000000.000100", text="hello", user="U1", team="T1")
    return capture.ChatMessage(**(base | kw))


def test_link_is_admin_only_and_relinks(db, admin):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com")
    other = add_customer(db, admin, name="Other", email="x@other.com")
    _, manager = make_user(db, "Mia", Role.manager)
    with db.transaction() as session, pytest.raises(PermissionDenied):
        capture.link_channel(session, channel_id="C1", customer_id=acme.id, actor=manager)
    with db.transaction() as session:
        capture.link_channel(session, channel_id="c1", customer_id=acme.id, actor=admin)
    with db.transaction() as session:
        link = capture.link_channel(session, channel_id="C1", customer_id=other.id, actor=admin)
        assert link.customer_id == other.id
    with db.session() as session:
        actions = [
            e.action
            for e in session.exec(select(AuditEvent).where(AuditEvent.entity == "channel_link"))
        ]
    assert actions == ["link", "relink"]
    with db.transaction() as session:
        capture.unlink_channel(session, channel_id="C1", actor=admin)
    with db.transaction() as session, pytest.raises(NotFound):
        capture.unlink_channel(session, channel_id="C1", actor=admin)
    with db.transaction() as session, pytest.raises(CRMError):
        capture.link_channel(session, channel_id="C 1;", customer_id=acme.id, actor=admin)


def test_capture_dedupes_threads_edits_and_deletes(db, admin):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com")
    with db.transaction() as session:
        capture.link_channel(session, channel_id="C1", customer_id=acme.id, actor=admin)
    root = _msg(author_email="joe@acme.com", author_is_external=True)
    reply = _msg(
        ts="1700000005.000200",
        thread_ts=root.ts,
        text="reply",
        user="U2",
        author_email="me@ourco.com",
    )
    with db.transaction() as session:
        first = capture.capture_message(session, message=root, actor=BOT)
        again = capture.capture_message(session, message=root, actor=BOT)  # a retried event
        threaded = capture.capture_message(session, message=reply, actor=BOT)
    assert first.created and not again.created and again.interaction.id == first.interaction.id
    assert first.interaction.direction == Direction.inbound
    assert first.interaction.meta["contact"] == "joe@acme.com"
    assert (
        first.interaction.source == "slack:T1"
        and first.interaction.external_id == "C1:1700000000.000100"
    )
    assert threaded.interaction.thread_key == first.interaction.thread_key == "C1:1700000000.000100"
    assert threaded.interaction.direction == Direction.outbound
    assert first.interaction.occurred_at.timestamp() == pytest.approx(1700000000.0001)

    with db.transaction() as session:
        capture.capture_edit(
            session, team="T1", channel="C1", ts=root.ts, text="hello (edited)", actor=BOT
        )
        capture.capture_delete(session, team="T1", channel="C1", ts=reply.ts, actor=BOT)
        assert (
            capture.capture_edit(session, team="T1", channel="C1", ts="1.2", text="x", actor=BOT)
            is None
        )
    with db.session() as session:
        rows = {i.external_id: i for i in session.exec(select(Interaction))}
    assert len(rows) == 2
    assert rows["C1:1700000000.000100"].body == "hello (edited)"
    assert rows["C1:1700000005.000200"].deleted_at is not None


def test_capture_skips_unlinked_bots_joins_and_keeps_file_names(db, admin):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com")
    with db.transaction() as session:
        assert (
            capture.capture_message(session, message=_msg(), actor=BOT).skipped
            == "channel not linked"
        )
        capture.link_channel(session, channel_id="C1", customer_id=acme.id, actor=admin)
        assert (
            capture.capture_message(session, message=_msg(bot_id="B1"), actor=BOT).skipped
            == "bot message"
        )
        assert capture.capture_message(
            session, message=_msg(subtype="channel_join"), actor=BOT
        ).skipped
        assert capture.capture_message(
            session, message=_msg(subtype="channel_leave"), actor=BOT
        ).skipped
        files = capture.capture_message(
            session,
            message=_msg(
                ts="1700000009.1",
                text="",
                subtype="file_share",
                files=[capture.ChatFile("quote.pdf", "https://files.example/quote.pdf")],
                author_email="stranger@elsewhere.org",
                author_is_external=True,
            ),
            actor=BOT,
        )
    assert files.created
    assert files.interaction.meta["files"] == [
        {"name": "quote.pdf", "url": "https://files.example/quote.pdf"}
    ]
    assert files.interaction.body == "Shared quote.pdf"
    assert "contact" not in files.interaction.meta  # other domain: not this customer's contact


def test_log_messages_stores_thread_once_and_checks_the_deal(db, admin, settings):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com")
    other = add_customer(db, admin, name="Other", email="x@other.com")
    deal = add_deal(db, admin, settings, acme.id)
    foreign = add_deal(db, admin, settings, other.id)
    thread = [_msg(), _msg(ts="1700000001.0", thread_ts="1700000000.000100", text="more")]
    with db.transaction() as session:
        results = capture.log_messages(
            session, customer_id=acme.id, deal_id=deal.id, messages=thread, actor=admin
        )
    assert [r.created for r in results] == [True, True]
    with db.transaction() as session:
        again = capture.log_messages(session, customer_id=acme.id, messages=thread, actor=admin)
    assert [r.created for r in again] == [False, False]
    with db.transaction() as session, pytest.raises(CRMError):
        capture.log_messages(
            session,
            customer_id=acme.id,
            deal_id=foreign.id,
            messages=[_msg(ts="1700000002.0")],
            actor=admin,
        )
    with db.transaction() as session, pytest.raises(CRMError):
        capture.log_messages(session, customer_id=other.id, messages=thread[:1], actor=admin)
    _, viewer = make_user(db, "Vic", Role.viewer)
    with db.transaction() as session, pytest.raises(PermissionDenied):
        capture.log_messages(session, customer_id=acme.id, messages=[_msg(ts="9.0")], actor=viewer)
    with db.session() as session:
        assert len(list(session.exec(select(Interaction)))) == 2


def test_relogging_a_captured_message_refuses_another_customers_deal(db, admin, settings):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com")
    other = add_customer(db, admin, name="Other", email="x@other.com")
    foreign = add_deal(db, admin, settings, other.id)
    own = add_deal(db, admin, settings, acme.id)
    with db.transaction() as session:
        capture.link_channel(session, channel_id="C1", customer_id=acme.id, actor=admin)
        captured = capture.capture_message(session, message=_msg(), actor=BOT)
    assert captured.created and captured.interaction.deal_id is None
    # Logged by hand now, for the right customer but with a deal of another customer.
    with db.transaction() as session, pytest.raises(CRMError, match="belongs to customer"):
        capture.log_messages(
            session, customer_id=acme.id, deal_id=foreign.id, messages=[_msg()], actor=admin
        )
    with db.transaction() as session, pytest.raises(NotFound):
        capture.log_messages(
            session, customer_id=acme.id, deal_id=10_000, messages=[_msg()], actor=admin
        )
    with db.session() as session:
        row = session.exec(select(Interaction)).one()
        attached = session.exec(select(AuditEvent).where(AuditEvent.action == "attach_deal"))
        assert row.deal_id is None and list(attached) == []
    # The customer's own deal is attached to the stored row, with an audit event.
    with db.transaction() as session:
        results = capture.log_messages(
            session, customer_id=acme.id, deal_id=own.id, messages=[_msg()], actor=admin
        )
    assert [r.created for r in results] == [False]
    with db.session() as session:
        assert session.exec(select(Interaction)).one().deal_id == own.id
        attached = session.exec(select(AuditEvent).where(AuditEvent.action == "attach_deal"))
        assert [e.after for e in attached] == [{"deal_id": own.id}]
