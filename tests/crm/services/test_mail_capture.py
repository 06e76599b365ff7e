"""Mail capture service: matching, forwards, outbound BCC, threading, idempotency, quarantine."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, func, select

from crm.db import Database
from crm.models import (
    AuditEvent,
    ContactPoint,
    Customer,
    Direction,
    Interaction,
    Lease,
    QuarantinedMessage,
    Role,
)
from crm.services import leases
from crm.services.actor import Actor
from crm.services.mail_capture import (
    CaptureOutcome,
    CapturePolicy,
    IncomingMail,
    MailAddress,
    advance_mailbox,
    begin_mailbox_sync,
    capture_mail,
    capture_mails,
    get_mailbox_state,
)
from tests.factories import add_customer

POLICY = CapturePolicy(internal_domains=("ourco.com",), unknown_sender="create_lead")
WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def mail(
    mid: str | None = "m1@acme.com",
    *,
    sender: str = "jane@acme.com",
    name: str = "Jane Doe",
    to: tuple[str, ...] = ("support@ourco.com",),
    source: str = "imap:support",
    **extra,
) -> IncomingMail:
    return IncomingMail(
        source=source,
        content_hash=f"hash-{mid or extra.get('subject', 'x')}",
        raw=b"raw bytes",
        raw_size=9,
        message_id=mid,
        from_=MailAddress(name, sender),
        to=[MailAddress("", a) for a in to],
        subject=extra.pop("subject", "Question"),
        new_text=extra.pop("new_text", "Can you send the quote?"),
        date=extra.pop("date", WHEN),
        **extra,
    )


def store(db: Database, *mails: IncomingMail, policy: CapturePolicy = POLICY, actor=None):
    with db.transaction() as session:
        return capture_mails(
            session, mails=list(mails), policy=policy, actor=actor or Actor.system("mail:test")
        )


def interactions(db: Database) -> list[Interaction]:
    with db.session() as session:
        return list(session.exec(select(Interaction).order_by(col(Interaction.id))))


def count(db: Database, model) -> int:
    with db.session() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_sender_matched_by_contact_email_then_company_domain(db, admin):
    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    results = store(
        db,
        mail("m1@acme.com"),
        mail("m2@acme.com", sender="bob@acme.com", name="Bob"),
        mail("m3@acme.com", sender="carl@eu.acme.com", name="Carl"),
    )
    assert [r.outcome for r in results] == [CaptureOutcome.stored] * 3
    stored = interactions(db)
    assert {i.customer_id for i in stored} == {jane.id}
    assert [i.meta["matched_on"] for i in stored] == ["email", "domain", "domain"]
    first = stored[0]
    assert first.direction == Direction.inbound and first.channel == "email"
    assert first.body == "Can you send the quote?" and first.occurred_at == WHEN
    assert first.author == "Jane Doe <jane@acme.com>" and first.source == "mail"
    assert first.meta["received_via"] == "imap:support"
    assert count(db, Customer) == 1


def test_free_mail_domains_never_match_a_company(db, admin):
    add_customer(db, admin, "Gail", "gail@gmail.com")
    [result] = store(db, mail("g1@x", sender="someone.else@gmail.com", name="Someone Else"))
    assert result.outcome == CaptureOutcome.stored
    with db.session() as session:
        new = session.get(Customer, result.customer_id)
        assert new.name == "Someone Else" and new.status == "lead" and new.domain is None
    assert count(db, Customer) == 2


@pytest.mark.parametrize("policy", ["ignore", "quarantine"])
def test_unknown_sender_policy(db, policy):
    [result] = store(
        db, mail(), policy=CapturePolicy(internal_domains=("ourco.com",), unknown_sender=policy)
    )
    assert count(db, Customer) == 0 and count(db, Interaction) == 0
    if policy == "ignore":
        assert result.outcome == CaptureOutcome.ignored
        # Ignored, not lost: the record says where the mail went and why.
        with db.session() as session:
            held = session.exec(select(QuarantinedMessage)).one()
        assert held.outcome == "ignored" and "unknown sender jane@acme.com" in held.reason
        assert (held.origin, held.subject, held.sender) == (
            "imap:support", "Question", "Jane Doe <jane@acme.com>")
    else:
        assert result.outcome == CaptureOutcome.quarantined
        with db.session() as session:
            held = session.exec(select(QuarantinedMessage)).one()
            assert held.raw == b"raw bytes" and "unknown sender jane@acme.com" in held.reason


def test_quarantined_mail_is_stored_once_the_sender_is_known(db, admin):
    strict = CapturePolicy(internal_domains=("ourco.com",), unknown_sender="quarantine")
    assert store(db, mail(), policy=strict)[0].outcome == CaptureOutcome.quarantined
    assert store(db, mail(), policy=strict)[0].outcome == CaptureOutcome.duplicate
    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    assert store(db, mail(), policy=strict)[0].outcome == CaptureOutcome.stored
    with db.session() as session:
        assert session.exec(select(QuarantinedMessage)).one().resolved_at is not None


def test_forward_is_credited_to_the_original_sender_and_records_the_forwarder(db, admin):
    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    forwarded = mail(
        "fw1@ourco.com",
        sender="ana@ourco.com",
        name="Ana Agent",
        forwarded=True,
        original_sender=MailAddress("Jane Doe", "jane@acme.com"),
        forwarded_by=MailAddress("Ana Agent", "ana@ourco.com"),
        forward_note="FYI, see below",
    )
    [result] = store(db, forwarded)
    assert result.outcome == CaptureOutcome.stored and result.customer_id == jane.id
    [i] = interactions(db)
    assert i.direction == Direction.inbound and i.author == "Jane Doe <jane@acme.com>"
    assert i.meta["captured_by"] == "captured by Ana Agent <ana@ourco.com> via forward"
    assert i.meta["forward_note"] == "FYI, see below"


def test_forward_without_original_sender_is_quarantined(db):
    [result] = store(
        db,
        mail(
            "fw2@ourco.com",
            sender="ana@ourco.com",
            forwarded=True,
            forwarded_by=MailAddress("", "ana@ourco.com"),
        ),
    )
    assert result.outcome == CaptureOutcome.quarantined
    assert "original sender" in (result.reason or "")


def test_staff_mail_to_a_customer_is_outbound_and_matched_on_recipients(db, admin):
    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    bcc = mail(
        "out1@ourco.com",
        sender="ana@ourco.com",
        name="Ana Agent",
        to=("colleague@ourco.com", "jane@acme.com"),
    )
    internal_only = mail("int1@ourco.com", sender="ana@ourco.com", to=("bob@ourco.com",))
    out, internal = store(db, bcc, internal_only)
    assert out.outcome == CaptureOutcome.stored and out.customer_id == jane.id
    assert internal.outcome == CaptureOutcome.ignored
    [i] = interactions(db)
    assert i.direction == Direction.outbound and i.author == "Ana Agent <ana@ourco.com>"
    assert i.meta["recipient"] == "jane@acme.com"


def test_same_mail_twice_changes_nothing_and_missing_message_id_uses_the_hash(db):
    no_id = mail(None, subject="No id")
    first = store(db, mail(), no_id)
    before = (count(db, Interaction), count(db, Customer), count(db, AuditEvent))
    second = store(db, mail(), no_id, mail())  # again, and twice within one batch
    assert [r.outcome for r in first] == [CaptureOutcome.stored] * 2
    assert [r.outcome for r in second] == [CaptureOutcome.duplicate] * 3
    assert (count(db, Interaction), count(db, Customer), count(db, AuditEvent)) == before
    assert interactions(db)[1].external_id == "sha256:hash-No id"
    # One message is one interaction wherever it came from: another mailbox, a file.
    for source in ("imap:sales", "ingest:eml", "ingest:message.eml"):
        assert [r.outcome for r in store(db, mail(source=source), no_id)] == [
            CaptureOutcome.duplicate] * 2
    assert (count(db, Interaction), count(db, Customer), count(db, AuditEvent)) == before


def test_threading_follows_message_ids_and_never_the_subject(db, admin):
    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    add_customer(db, admin, "Max Muster", "max@other.org")
    store(db, mail("root@acme.com", subject="Invoice"))
    store(
        db,
        mail(
            "reply@ourco.com",
            sender="ana@ourco.com",
            to=("jane@acme.com",),
            subject="Invoice",
            in_reply_to="root@acme.com",
            references=["root@acme.com"],
        ),
        mail(
            "again@acme.com",
            subject="Invoice",
            in_reply_to="reply@ourco.com",
            references=["root@acme.com", "reply@ourco.com"],
        ),
    )
    # Same subject, different person, no reference: a thread of its own.
    store(db, mail("max1@other.org", sender="max@other.org", name="Max", subject="Invoice"))
    # A reply whose parent arrives later still lands in the root's thread.
    store(
        db,
        mail(
            "late@acme.com",
            subject="Re: other",
            in_reply_to="unknown@acme.com",
            references=["first@acme.com", "unknown@acme.com"],
        ),
    )
    store(db, mail("first@acme.com", subject="other"))
    keys = {i.external_id: i.thread_key for i in interactions(db)}
    assert keys["root@acme.com"] == keys["reply@ourco.com"] == keys["again@acme.com"]
    assert keys["max1@other.org"] != keys["root@acme.com"]
    assert keys["late@acme.com"] == keys["first@acme.com"] == "mail:first@acme.com"


def test_captures_are_audited_and_nul_bytes_never_reach_the_database(db):
    [result] = store(db, mail("nul@acme.com", subject="bad\x00subject", new_text="a\x00b"))
    assert result.outcome == CaptureOutcome.stored
    [i] = interactions(db)
    assert i.subject == "badsubject" and i.body == "ab"
    with db.session() as session:
        actions = session.exec(select(AuditEvent.action, AuditEvent.entity)).all()
    assert ("capture", "interaction") in actions and ("create", "customer") in actions


def test_unusable_and_auto_reply_mail(db, admin):
    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    broken = mail(None, subject="junk", unusable_reason="not an email (no message headers)")
    auto = mail("ooo@acme.com", auto_reply=True)
    future = mail("future@acme.com", date=datetime.now(UTC) + timedelta(days=30))
    r_broken, r_auto, r_future = store(db, broken, auto, future)
    assert r_broken.outcome == CaptureOutcome.quarantined
    assert r_auto.outcome == CaptureOutcome.ignored
    assert r_future.outcome == CaptureOutcome.stored
    [i] = interactions(db)
    assert i.occurred_at <= datetime.now(UTC)
    assert any("Date header ignored" in p for p in i.meta["problems"])


def test_a_bad_message_in_a_batch_does_not_stop_the_others(db, admin):
    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    huge_id = mail("x" * 600 + "@acme.com")  # over the column size: hashed, still stored
    bad_date = mail("naive@acme.com", date=datetime(2026, 1, 1))  # no time zone
    results = store(db, mail("a@acme.com"), huge_id, bad_date, mail("b@acme.com"))
    assert [r.outcome for r in results] == [CaptureOutcome.stored] * 4
    assert results[1].external_id.startswith("mid-sha256:")


def test_batch_falls_back_to_one_by_one_when_the_fast_path_fails(db, admin, monkeypatch):
    import crm.services.mail_capture as capture

    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    real = capture._build_interaction

    def flaky(p, *args):
        if p.mail.message_id == "poison@acme.com":
            raise ValueError("cannot build this one")
        return real(p, *args)

    monkeypatch.setattr(capture, "_build_interaction", flaky)
    results = store(db, mail("ok1@acme.com"), mail("poison@acme.com"), mail("ok2@acme.com"))
    assert [r.outcome for r in results] == [
        CaptureOutcome.stored,
        CaptureOutcome.quarantined,
        CaptureOutcome.stored,
    ]
    assert "cannot build this one" in results[1].reason
    assert count(db, Interaction) == 2 and count(db, QuarantinedMessage) == 1


def test_viewer_cannot_capture(db):
    from crm.models import Role
    from crm.services.errors import PermissionDenied

    with pytest.raises(PermissionDenied), db.transaction() as session:
        capture_mail(session, mail=mail(), policy=POLICY, actor=Actor("v", role=Role.viewer))


def test_concurrent_batches_store_each_mail_once(db):
    """Two writers with overlapping batches (e.g. a lease that changed hands)."""
    batch = [mail(f"c{i}@acme.com") for i in range(30)]
    errors: list[BaseException] = []

    def worker(mails):
        try:
            store(db, *mails)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(batch[i:] + batch[:i],)) for i in (0, 15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(db, Interaction) == 30
    with db.session() as session:
        assert session.exec(select(func.count()).select_from(ContactPoint)).one() == 1


def test_mailbox_sync_state_and_uidvalidity(db):
    actor = Actor.system("mail:test")
    with db.transaction() as session:
        begin_mailbox_sync(session, mailbox="support", uid_validity=7, actor=actor)
        advance_mailbox(session, mailbox="support", uid_validity=7, last_uid=42)
    with db.transaction() as session:
        state = begin_mailbox_sync(
            session, mailbox="support", uid_validity=4_000_000_000, actor=actor
        )
        assert (state.last_uid, state.flagged_uid) == (0, 0)
    with db.session() as session:
        assert get_mailbox_state(session, "support").uid_validity == 4_000_000_000


def test_lease_has_one_holder_until_it_expires(db):
    actor = Actor.system("test")
    now = datetime.now(UTC)
    ttl = timedelta(seconds=30)
    with db.transaction() as session:
        assert leases.acquire_lease(
            session, name="mailbox:x", holder="a", ttl=ttl, actor=actor, now=now
        )
    with db.transaction() as session:
        assert not leases.acquire_lease(
            session, name="mailbox:x", holder="b", ttl=ttl, actor=actor, now=now
        )
        assert leases.acquire_lease(
            session, name="mailbox:x", holder="a", ttl=ttl, actor=actor, now=now
        )
    later = now + timedelta(seconds=31)
    with db.transaction() as session:
        assert leases.acquire_lease(
            session, name="mailbox:x", holder="b", ttl=ttl, actor=actor, now=later
        )
    with db.transaction() as session:
        assert not leases.release_lease(session, name="mailbox:x", holder="a", actor=actor)
        assert leases.release_lease(session, name="mailbox:x", holder="b", actor=actor)
    with db.session() as session:
        assert leases.current_holder(session, "mailbox:x") is None
        actions = session.exec(
            select(AuditEvent.action)
            .where(AuditEvent.entity == "lease")
            .order_by(col(AuditEvent.id))
        ).all()
    assert actions == ["acquire", "take_over", "release"]


def test_lease_race_has_exactly_one_winner(db):
    actor = Actor.system("test")
    wins: list[str] = []
    barrier = threading.Barrier(6)

    def contender(name: str) -> None:
        barrier.wait()
        with db.transaction() as session:
            if leases.acquire_lease(
                session, name="mailbox:race", holder=name, ttl=timedelta(minutes=1), actor=actor
            ):
                wins.append(name)

    threads = [threading.Thread(target=contender, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    with db.session() as session:
        assert session.get(Lease, "mailbox:race").holder == wins[0]


def test_a_customer_forwarding_mail_to_us_is_the_one_credited(db, admin):
    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    from_customer = mail(
        "cfw@acme.com",
        forwarded=True,
        original_sender=MailAddress("Vendor Vic", "vic@vendor.example"),
        forwarded_by=MailAddress("Jane Doe", "jane@acme.com"),
    )
    [result] = store(db, from_customer)
    assert result.customer_id == jane.id
    [i] = interactions(db)
    assert i.meta["forwarded_from"] == "Vendor Vic <vic@vendor.example>"
    assert "captured_by" not in i.meta


def test_list_and_role_mail_creates_no_lead_and_counts_only_for_known_contacts(db, admin):
    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    role = mail("inv@billing.example", sender="noreply@billing.example", name="Billing")
    listed = mail("post@lists.example", sender="sam@gmail.com", list_mail="List-Id: <crm-users>")
    postmaster = mail("pm@acme.com", sender="postmaster@acme.com", name="")  # a customer domain
    known = mail("known@acme.com", list_mail="Precedence: list")  # from jane@acme.com
    results = store(db, role, listed, postmaster, known)
    assert [r.outcome for r in results] == [CaptureOutcome.ignored] * 3 + [CaptureOutcome.stored]
    assert "noreply@billing.example, a system or list address" in results[0].reason
    assert "List-Id: <crm-users>" in results[1].reason and "no lead" in results[1].reason
    assert count(db, Customer) == 1
    with db.session() as session:
        kept = session.exec(select(QuarantinedMessage).order_by(col(QuarantinedMessage.id))).all()
    assert [(q.outcome, q.sender) for q in kept] == [
        ("ignored", "Billing <noreply@billing.example>"),
        ("ignored", "Jane Doe <sam@gmail.com>"),
        ("ignored", "postmaster@acme.com"),
    ]
    # A setting lets list and role mail create leads like any other mail.
    open_policy = CapturePolicy(internal_domains=("ourco.com",), list_leads=True)
    [lead] = store(db, mail("new@lists.example", sender="ann@gmail.com", list_mail="List-Id: x"),
                   policy=open_policy)
    assert lead.outcome == CaptureOutcome.stored and count(db, Customer) == 2


def test_ignored_mail_leaves_a_trace_once(db, admin):
    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    ooo = mail("ooo@acme.com", auto_reply=True, auto_reason="Auto-Submitted: auto-replied",
               origin="UID 7", subject="Out of office")
    [first] = store(db, ooo)
    assert first.outcome == CaptureOutcome.ignored
    assert first.reason == "automatic reply (Auto-Submitted: auto-replied)"
    [again] = store(db, ooo)
    assert again.outcome == CaptureOutcome.duplicate and again.reason.startswith("already ignored")
    with db.session() as session:
        [kept] = session.exec(select(QuarantinedMessage)).all()
        audit = session.exec(select(AuditEvent).where(AuditEvent.action == "ignore")).one()
    assert (kept.outcome, kept.origin, kept.subject) == ("ignored", "imap:support UID 7",
                                                         "Out of office")
    assert kept.raw == b"raw bytes" and kept.sent_at == WHEN
    assert audit.after["reason"] == first.reason


def test_new_leads_of_a_batch_are_created_together_once_each(db, admin):
    batch = [
        mail("l1@a.example", sender="ann@a.example", name="Ann A"),
        mail("l2@a.example", sender="bob@a.example", name="Bob A"),  # same company: Ann's lead
        mail("l3@b.example", sender="cid@b.example", name=""),  # no name: the local part
        mail("l4@a.example", sender="ann@a.example", name="Ann A"),
    ]
    results = store(db, *batch)
    assert [r.outcome for r in results] == [CaptureOutcome.stored] * 4
    with db.session() as session:
        leads = session.exec(select(Customer).order_by(col(Customer.id))).all()
        created = session.exec(
            select(AuditEvent).where(AuditEvent.action == "create", AuditEvent.entity == "customer")
        ).all()
    assert [(c.name, c.domain, c.status) for c in leads] == [
        ("Ann A", "a.example", "lead"), ("cid", "b.example", "lead")]
    assert [r.customer_id for r in results] == [leads[0].id, leads[0].id, leads[1].id, leads[0].id]
    assert sorted(e.after["email"] for e in created) == ["ann@a.example", "cid@b.example"]
    assert [i.meta["matched_on"] for i in interactions(db)] == [
        "new lead", "domain", "new lead", "email"]


def test_a_lead_another_replica_just_created_is_reused(db, admin, monkeypatch):
    import crm.services.mail_capture as capture

    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    # This replica looked before the other one committed: it does not see Jane's contact.
    monkeypatch.setattr(capture._Lookups, "load", lambda self, *args: None)
    [result] = store(db, mail("race@acme.com"))
    assert result.outcome == CaptureOutcome.stored and result.customer_id == jane.id
    assert count(db, Customer) == 1


def test_a_new_address_whose_signature_gives_a_customers_phone_is_attached_to_them(db, admin):
    """Strong evidence (their number in the signature, their name on the mail) files the mail
    under the known customer and adds the address; the same number under another name does not."""
    olwen = add_customer(db, admin, "Olwen Pryce", "olwen@larkspur.test", phone="+44 20 7946 0958")
    signed = "Olwen Pryce\nHead of Operations\nTel: +44 (0)20 7946 0958\nFax: +44 20 7946 0000"
    first, again, stranger = store(
        db,
        mail("p1@gmail.com", sender="olwen.pryce@gmail.com", name="Pryce, Olwen", signature=signed),
        mail("p2@gmail.com", sender="olwen.pryce@gmail.com", name="Olwen Pryce", date=WHEN + timedelta(hours=1)),
        mail("p3@gmail.com", sender="gareth@gmail.com", name="Gareth Lloyd", signature=signed),
    )
    assert first.customer_id == again.customer_id == olwen.id
    assert stranger.customer_id not in (None, olwen.id)
    with db.session() as session:
        emails = set(
            session.exec(
                select(ContactPoint.value).where(
                    ContactPoint.customer_id == olwen.id, ContactPoint.kind == "email"
                )
            )
        )
        attach = session.exec(select(AuditEvent).where(AuditEvent.action == "attach")).one()
    assert emails == {"olwen@larkspur.test", "olwen.pryce@gmail.com"}
    assert attach.entity_id == str(olwen.id) and "same phone" in attach.after["reasons"]
    stored = {i.external_id: i for i in interactions(db)}
    assert stored["p1@gmail.com"].meta["matched_on"].startswith("attached: same phone")
    assert count(db, Customer) == 2  # Olwen, and a lead for Gareth


def test_signature_phones_need_an_international_form_or_a_label():
    from crm.services.mail_capture import signature_phones

    assert signature_phones("Tel: +44 (0)20 7946 0958\nFax: +44 20 7946 0000") == ["+442079460958"]
    assert signature_phones("Mobil: 030 1234567") == ["0301234567"]
    assert signature_phones("Best,\nBob\n+1 (415) 555-0134 | bob@example.com") == ["+14155550134"]
    assert signature_phones("Order 123456789 of 2026-12-05, ref 4471-2231") == []
    # Each number is labelled by the nearest label before it on its line.
    assert signature_phones("Tel: +44 20 7946 0958 | Fax: +44 20 7946 0000") == ["+442079460958"]
    assert signature_phones("T: 030 1234567  F: 030 7654321") == ["0301234567"]
    assert signature_phones("Telephone: 030 1234567\nTelefax: 030 7654321") == ["0301234567"]


def test_a_wrong_attach_is_undone_by_detaching_the_address(db, admin):
    """Someone who signs with a customer's name and number gets their address filed under that
    customer; detaching it makes them a lead of their own with the mail they wrote and the
    replies sent to them, and the customer keeps the rest."""
    from crm.services.customers import detach_email
    from crm.services.errors import CRMError, NotFound, PermissionDenied

    olwen = add_customer(db, admin, "Olwen Pryce", "olwen@larkspur.test", phone="+44 20 7946 0958")
    signed = "Olwen Pryce\nTel: +44 20 7946 0958"
    store(
        db,
        mail("o1@larkspur.test", sender="olwen@larkspur.test", name="Olwen Pryce"),
        mail("f1@gmail.com", sender="impostor@gmail.com", name="Olwen Pryce", signature=signed),
        mail(
            "r1@ourco.com",
            sender="ana@ourco.com",
            name="Ana Agent",
            to=("impostor@gmail.com",),
            date=WHEN + timedelta(hours=2),
        ),
    )
    assert {i.customer_id for i in interactions(db)} == {olwen.id}
    viewer = Actor(name="vic", role=Role.viewer)
    with db.transaction() as session, pytest.raises(PermissionDenied):
        detach_email(session, customer_id=olwen.id, email="impostor@gmail.com", actor=viewer)
    with db.transaction() as session:
        with pytest.raises(NotFound, match="has no address nobody@gmail.com"):
            detach_email(session, customer_id=olwen.id, email="nobody@gmail.com", actor=admin)
        done = detach_email(session, customer_id=olwen.id, email="Impostor@Gmail.com", actor=admin)
    stored = {i.external_id: i for i in interactions(db)}
    assert stored["f1@gmail.com"].customer_id == stored["r1@ourco.com"].customer_id == done.lead_id
    assert stored["o1@larkspur.test"].customer_id == olwen.id
    with db.session() as session:
        lead = session.get(Customer, done.lead_id)
        assert lead is not None and lead.name == "Olwen Pryce" and lead.status == "lead"
        points = {
            (p.customer_id, p.value)
            for p in session.exec(select(ContactPoint).where(ContactPoint.kind == "email"))
        }
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "detach")).one()
    assert points == {(olwen.id, "olwen@larkspur.test"), (done.lead_id, "impostor@gmail.com")}
    assert event.after["interactions"] == sorted(done.interactions) and len(done.interactions) == 2
    with db.transaction() as session, pytest.raises(CRMError, match="only address"):
        detach_email(session, customer_id=olwen.id, email="olwen@larkspur.test", actor=admin)
