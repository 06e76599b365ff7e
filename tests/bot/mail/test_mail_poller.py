"""The IMAP poller against a real Dovecot: nothing lost, nothing stored twice."""

from __future__ import annotations

import threading
import time

import pytest
from sqlmodel import col, func, select

from bot.mail.poller import MailboxPoller
from crm.db import Database
from crm.models import Interaction, Lease, MailboxState, QuarantinedMessage
from crm.services import mail_capture


def _count(db: Database, model=Interaction) -> int:
    with db.session() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def _external_ids(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.exec(select(Interaction.external_id)).all())


def _wait_until(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_poll_once_stores_flags_and_records_state(db, imap_account, make_mail):
    imap_account.append(*(make_mail(i) for i in range(7)))
    settings = imap_account.settings(db.url, imap_batch_size=3)
    report = MailboxPoller(settings, db).poll_once()
    assert report.fetched == 7 and report.summary.stored == 7
    assert _external_ids(db) == sorted(f"msg{i}@acme.example" for i in range(7))
    seen, unseen = imap_account.seen_and_unseen()
    assert len(seen) == 7 and unseen == []
    with db.session() as session:
        state = mail_capture.get_mailbox_state(session, imap_account.user)
        assert state is not None
        assert state.last_uid == state.flagged_uid == max(seen)
        assert state.stored_count == 7 and state.last_success_at is not None
    # A second round finds nothing new and changes nothing.
    again = MailboxPoller(settings, db).poll_once()
    assert again.fetched == 0 and _count(db) == 7


def test_move_mode_moves_stored_mail_to_the_processed_folder(db, imap_account, make_mail):
    imap_account.append(*(make_mail(i) for i in range(4)))
    settings = imap_account.settings(
        db.url, imap_processed_action="move", imap_processed_folder="Done"
    )
    report = MailboxPoller(settings, db).poll_once()
    assert report.summary.stored == 4
    assert imap_account.seen_and_unseen("INBOX") == ([], [])
    with imap_account.client() as client:
        assert client.select_folder("Done")[b"EXISTS"] == 4


def test_new_mail_during_idle_is_stored_at_once(db, imap_account, make_mail):
    imap_account.append(make_mail(1))
    # Polling every 10 minutes: only IDLE can explain a quick pick-up.
    settings = imap_account.settings(db.url, imap_poll_seconds=600)
    poller = MailboxPoller(settings, db)
    poller.start()
    try:
        assert _wait_until(lambda: _count(db) == 1)
        time.sleep(0.5)  # the poller is now idling
        imap_account.append(make_mail(2), make_mail(3))
        assert _wait_until(lambda: _count(db) == 3, timeout=10)
        assert _wait_until(lambda: imap_account.seen_and_unseen()[1] == [], timeout=10)
    finally:
        poller.stop()
    assert _external_ids(db) == [f"msg{i}@acme.example" for i in (1, 2, 3)]
    with db.session() as session:  # a clean stop gives the lease back at once
        lease = session.get(Lease, poller.lease_name)
        assert lease is not None and lease.expires_at < mail_capture.utcnow()


def test_server_kick_mid_sync_then_reconnect_loses_and_doubles_nothing(db, imap_account, make_mail):
    imap_account.append(*(make_mail(i) for i in range(40)))
    settings = imap_account.settings(db.url, imap_batch_size=5)
    kicked = threading.Event()

    def kick_after_second_batch(uids):
        # The connection dies after a batch committed and before it was flagged.
        if not kicked.is_set() and uids[0] > 5:
            kicked.set()
            imap_account.kick()

    poller = MailboxPoller(settings, db, after_commit=kick_after_second_batch)
    poller.start()
    try:
        assert _wait_until(lambda: _count(db) == 40, timeout=120)
        assert _wait_until(lambda: imap_account.seen_and_unseen()[1] == [], timeout=15)
    finally:
        poller.stop()
    assert kicked.is_set()
    ids = _external_ids(db)
    assert len(ids) == len(set(ids)) == 40
    with db.session() as session:
        state = mail_capture.get_mailbox_state(session, imap_account.user)
        assert state.last_error is not None  # the drop was seen and recorded ...
        assert state.consecutive_failures == 0  # ... and the next round succeeded
        assert state.stored_count == 40 and state.duplicate_count == 0


def test_uidvalidity_reset_resyncs_without_duplicates(db, imap_account, make_mail):
    imap_account.append(*(make_mail(i) for i in range(5)))
    settings = imap_account.settings(db.url)
    first = MailboxPoller(settings, db).poll_once()
    assert first.summary.stored == 5
    imap_account.set_uid_validity(first.uid_validity + 1000)
    imap_account.append(make_mail(5), make_mail(6))
    second = MailboxPoller(settings, db).poll_once()
    assert second.uid_validity == first.uid_validity + 1000
    assert (second.summary.stored, second.summary.duplicate) == (2, 5)
    assert _count(db) == 7
    with db.session() as session:
        state = mail_capture.get_mailbox_state(session, imap_account.user)
        assert state.uid_validity == first.uid_validity + 1000
        from crm.models import AuditEvent

        resets = session.exec(
            select(AuditEvent).where(AuditEvent.action == "uidvalidity_reset")
        ).all()
        assert len(resets) == 1 and resets[0].before["uid_validity"] == first.uid_validity


def test_poison_messages_are_quarantined_and_do_not_block_the_batch(db, imap_account, make_mail):
    no_headers = b"this is not a mail at all\r\njust some text\r\n"
    no_sender = make_mail(99, sender="", message_id="<nosender@acme.example>").replace(
        b"From: \n", b""
    )
    nul_subject = make_mail(3, subject="=?utf-8?q?bad=00subject?=")
    imap_account.append(
        make_mail(1), no_headers, make_mail(2), no_sender, nul_subject, make_mail(4)
    )
    settings = imap_account.settings(db.url, imap_batch_size=10)
    report = MailboxPoller(settings, db).poll_once()
    assert (report.summary.stored, report.summary.quarantined) == (4, 2)
    assert _external_ids(db) == [f"msg{i}@acme.example" for i in (1, 2, 3, 4)]
    with db.session() as session:
        held = session.exec(select(QuarantinedMessage).order_by(col(QuarantinedMessage.id))).all()
        reasons = [q.reason for q in held]
        assert reasons == ["not an email (no message headers)", "no sender address"]
        assert held[0].raw.replace(b"\r\n", b"\n") == no_headers.replace(b"\r\n", b"\n")
        stored = session.exec(
            select(Interaction).where(Interaction.external_id == "msg3@acme.example")
        ).one()
        assert "\x00" not in (stored.subject or "")
    # Quarantined mail is still flagged: the mailbox does not offer it again and again.
    assert imap_account.seen_and_unseen()[1] == []
    again = MailboxPoller(settings, db).poll_once()
    assert again.fetched == 0 and _count(db, QuarantinedMessage) == 2


def test_crash_between_commit_and_flag_stores_nothing_twice(db, imap_account, make_mail):
    imap_account.append(*(make_mail(i) for i in range(8)))
    settings = imap_account.settings(db.url, imap_batch_size=3)

    def crash(_uids):
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        MailboxPoller(settings, db, after_commit=crash).poll_once()
    assert _count(db) == 3  # the first batch committed ...
    assert imap_account.seen_and_unseen()[0] == []  # ... but was never flagged
    report = MailboxPoller(settings, db).poll_once()
    assert report.summary.stored == 5 and report.summary.duplicate == 0
    assert _count(db) == 8
    assert imap_account.seen_and_unseen()[1] == []  # the unflagged batch got its \Seen too
    with db.session() as session:
        state = mail_capture.get_mailbox_state(session, imap_account.user)
        assert state.flagged_uid == state.last_uid


def test_two_pollers_on_postgresql_share_the_mailbox_without_double_ingest(
    db, imap_account, make_mail
):
    if db.dialect != "postgresql":
        pytest.skip("many replicas run on PostgreSQL")
    settings = imap_account.settings(db.url, imap_batch_size=4)
    first = MailboxPoller(settings, db, holder="replica-a")
    second = MailboxPoller(settings, db, holder="replica-b")
    imap_account.append(*(make_mail(i) for i in range(20)))
    first.start()
    second.start()
    try:
        for i in range(20, 40):
            imap_account.append(make_mail(i))
        assert _wait_until(lambda: _count(db) == 40, timeout=120)
        with db.session() as session:
            holder = session.get(Lease, first.lease_name).holder
        active, standby = (first, second) if holder == "replica-a" else (second, first)
        # The active replica goes away; the other takes over once the lease runs out.
        active.stop()
        imap_account.append(*(make_mail(i) for i in range(40, 45)))
        assert _wait_until(lambda: _count(db) == 45, timeout=120)
        with db.session() as session:
            assert session.get(Lease, first.lease_name).holder == standby.holder
    finally:
        first.stop()
        second.stop()
    ids = _external_ids(db)
    assert len(ids) == len(set(ids)) == 45
    with db.session() as session:
        state = session.exec(select(MailboxState)).one()
        assert state.duplicate_count == 0 and state.stored_count == 45


def test_tls_by_default_with_certificate_verification(db, imap_account, make_mail):
    import ssl

    imap_account.append(make_mail(1))
    server = imap_account.server
    tls = imap_account.settings(
        db.url, imap_security="tls", imap_port=server.tls_port, imap_ca_file=str(server.cert)
    )
    assert MailboxPoller(tls, db).poll_once().summary.stored == 1
    # Without trusting the certificate the connection is refused, not silently accepted.
    untrusted = imap_account.settings(db.url, imap_security="tls", imap_port=server.tls_port)
    with pytest.raises(ssl.SSLError):
        MailboxPoller(untrusted, db).poll_once()
    imap_account.append(make_mail(2))
    starttls = imap_account.settings(
        db.url, imap_security="starttls", imap_ca_file=str(server.cert)
    )
    assert MailboxPoller(starttls, db).poll_once().summary.stored == 1
    # The default security setting is TLS: plaintext is only ever used when asked for.
    from crm.config import Settings

    assert Settings(_env_file=None).imap_security == "tls"


def test_crmbot_run_starts_the_poller_as_a_component(db, imap_account, make_mail):
    from bot.mail.poller import poller_component
    from bot.runtime import Runtime

    imap_account.append(make_mail(1))
    runtime = Runtime(imap_account.settings(db.url), db, factories=[poller_component])
    runtime.start()
    try:
        assert [c.name for c in runtime.components] == ["mail poller"]
        assert _wait_until(lambda: _count(db) == 1)
    finally:
        runtime.stop()
    assert runtime.components == []


def test_idle_is_reissued_before_the_configured_limit(db, imap_account):
    rounds: list[float] = []

    class CountingPoller(MailboxPoller):
        def sync(self):
            rounds.append(time.monotonic())
            return super().sync()

    # Servers may drop an IDLE after 30 minutes; here the limit is one second.
    poller = CountingPoller(imap_account.settings(db.url, imap_idle_seconds=1), db)
    poller.start()
    try:
        assert _wait_until(lambda: len(rounds) >= 3, timeout=15)
    finally:
        poller.stop()
    gaps = [b - a for a, b in zip(rounds, rounds[1:], strict=False)]
    assert all(0.5 < gap < 5 for gap in gaps)


def test_batches_are_bounded_by_bytes_as_well_as_count(db, imap_account, make_mail):
    big = "x" * 70 + "\n"
    imap_account.append(
        make_mail(1),
        make_mail(2, body=big * 1_000),
        make_mail(3),
        make_mail(4, body=big * 2_500),
        make_mail(5),
    )
    batches: list[list[int]] = []
    settings = imap_account.settings(db.url, imap_batch_size=10, imap_batch_bytes=100_000)
    report = MailboxPoller(settings, db, after_commit=batches.append).poll_once()
    assert report.summary.stored == 5
    # 1, 2 (~71 KB) and 3 fit under 100 KB; 4 (~180 KB) is over the limit and goes alone.
    assert [len(b) for b in batches] == [3, 1, 1]


def test_move_without_the_move_extension_copies_and_expunges_only_those(
    db, imap_account, make_mail
):
    from bot.mail.imap_auth import connect

    imap_account.append(*(make_mail(i) for i in range(3)))

    def connect_without_move(settings):
        client = connect(settings)
        real = client.has_capability
        client.has_capability = lambda name: name.upper() != "MOVE" and real(name)
        return client

    settings = imap_account.settings(db.url, imap_processed_action="move")
    report = MailboxPoller(settings, db, connect_fn=connect_without_move).poll_once()
    assert report.summary.stored == 3
    with imap_account.client() as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        assert client.select_folder("Processed")[b"EXISTS"] == 3


def test_after_a_crash_the_next_poller_takes_the_lease_back_at_once(db, imap_account, make_mail):
    """`crmbot mail poll` killed with SIGKILL holds a 90 s lease; the next one polls at once."""
    import os
    import signal
    import subprocess
    import sys

    settings = imap_account.settings(db.url, imap_lease_seconds=90)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update({
        "CRM_DATABASE_URL": db.url, "CRM_IMAP_HOST": "127.0.0.1",
        "CRM_IMAP_PORT": str(settings.imap_port), "CRM_IMAP_SECURITY": "plaintext",
        "CRM_IMAP_USER": imap_account.user, "CRM_IMAP_PASSWORD": "secret",
        "CRM_IMAP_MAILBOX_NAME": imap_account.user, "CRM_IMAP_LEASE_SECONDS": "90",
    })
    crashed = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "mail", "poll"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_until(lambda: _count(db, MailboxState) == 1, timeout=30)
        with db.session() as session:
            holder = session.get(Lease, f"mailbox:{imap_account.user}").holder
        assert f":{crashed.pid}:" in holder
    finally:
        crashed.send_signal(signal.SIGKILL)
        crashed.wait()
    imap_account.append(make_mail(1))
    started = time.monotonic()
    report = MailboxPoller(settings, db).poll_once()
    assert report.skipped_reason is None and report.summary.stored == 1
    assert time.monotonic() - started < 30  # not the 90 s lease
