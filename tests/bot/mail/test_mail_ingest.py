"""`crmbot ingest` and `crmbot mail ...`: .eml files, folders, mbox, Maildir; the CLI surface."""

from __future__ import annotations

import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from bot.mail.ingest import content_hash, ingest_path, iter_messages
from crm.config import Settings
from crm.models import Customer, Interaction, QuarantinedMessage


@pytest.fixture
def crmbot(crmbot, monkeypatch):
    """The shared in-process runner, with this module's settings."""
    monkeypatch.setenv("CRM_INTERNAL_DOMAINS", "ourco.com")
    return crmbot


def _interactions(db) -> list[Interaction]:
    with db.session() as session:
        return list(session.exec(select(Interaction).order_by(col(Interaction.external_id))))


def _forward() -> bytes:
    m = EmailMessage()
    m["From"] = "Ana Agent <ana@ourco.com>"
    m["To"] = "crm@ourco.com"
    m["Subject"] = "Fwd: Broken invoice"
    m["Date"] = "Wed, 03 Nov 2021 10:00:00 +0000"
    m["Message-ID"] = "<fwd1@ourco.com>"
    m.set_content(
        "Please log this one.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Jane Roe <jane@client.example>\n"
        "Date: Tue, 2 Nov 2021 at 09:26\n"
        "Subject: Broken invoice\n"
        "To: Ana Agent <ana@ourco.com>\n\n"
        "Hi Ana,\n\nthe invoice total is wrong, can you fix it?\n\nJane\n"
    )
    return m.as_bytes()


def test_content_hash_ignores_what_mail_stores_add(make_mail):
    raw = make_mail(1, message_id=None)
    in_mbox = b"From jane@acme.example Tue Nov  2 09:26:50 2021\n" + raw.replace(
        b"\n\n", b"\nStatus: RO\nX-UID: 17\n\n", 1
    )
    assert content_hash(raw) == content_hash(in_mbox) == content_hash(raw.replace(b"\n", b"\r\n"))
    assert content_hash(raw) != content_hash(make_mail(2, message_id=None))


def test_ingest_eml_folder_mbox_and_maildir_and_again(db, tmp_path, make_mail, crmbot):
    folder = tmp_path / "eml"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.eml").write_bytes(make_mail(i))
    (folder / "fwd.eml").write_bytes(_forward())
    (folder / "junk.eml").write_bytes(b"\x00\x01 not a message")
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for i in range(10, 14):
        box.add(make_mail(i, sender=f"P{i} <p{i}@other.example>"))
    box.flush()
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for i in range(20, 22):
        maildir.add(make_mail(i, sender="ana@ourco.com", to="Jane Roe <jane@acme.example>"))

    code, out, _ = crmbot("ingest", str(folder), "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["kind"], report["stored"], report["quarantined"]) == ("folder", 4, 1)
    assert report["source"] == "ingest:eml"
    code, out, _ = crmbot("ingest", str(tmp_path / "inbox.mbox"), "--json")
    assert json.loads(out)["stored"] == 4 and json.loads(out)["kind"] == "mbox"
    code, out, _ = crmbot("ingest", str(tmp_path / "Maildir"), "--json")
    assert json.loads(out)["stored"] == 2 and json.loads(out)["kind"] == "maildir"

    # Everything again: nothing new.
    for path in (folder, tmp_path / "inbox.mbox", tmp_path / "Maildir"):
        code, out, _ = crmbot("ingest", str(path), "--json")
        again = json.loads(out)
        assert again["stored"] == 0 and again["quarantined"] == 0
        assert again["duplicate"] == again["total"]

    stored = {i.external_id: i for i in _interactions(db)}
    assert len(stored) == 10
    fwd = stored["fwd1@ourco.com"]
    assert fwd.author == "Jane Roe <jane@client.example>"
    assert fwd.meta["captured_by"] == "captured by Ana Agent <ana@ourco.com> via forward"
    assert "invoice total is wrong" in fwd.body
    outbound = stored["msg20@acme.example"]
    assert outbound.direction == "outbound"
    assert outbound.customer_id == stored["msg0@acme.example"].customer_id  # Jane, by email
    with db.session() as session:
        assert session.exec(select(func.count()).select_from(QuarantinedMessage)).one() == 1


def test_ingest_single_eml_with_a_chosen_source_and_progress(db, tmp_path, make_mail):
    path = tmp_path / "one.eml"
    path.write_bytes(make_mail(5))
    settings = Settings(_env_file=None, database_url=db.url, internal_domains=["ourco.com"])
    seen: list[int] = []
    report = ingest_path(
        path, settings=settings, db=db, source="imap:support", progress=seen.append
    )
    assert report.summary.stored == 1 and seen == [1]
    assert _interactions(db)[0].meta["received_via"] == "imap:support"
    assert _interactions(db)[0].meta["origin"] == str(path.resolve())


def test_one_message_is_one_interaction_wherever_it_came_from(
    db, tmp_path, make_mail, crmbot, imap_account
):
    """A folder, the same message as a single file, inside an mbox, and from the IMAP inbox."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "a.eml").write_bytes(make_mail(1))
    (folder / "b.eml").write_bytes(make_mail(2, message_id=None, subject="No Message-ID"))
    code, out, _ = crmbot("ingest", str(folder), "--json")
    assert code == 0 and json.loads(out)["stored"] == 2
    for single in (folder / "a.eml", folder / "b.eml"):
        copy = tmp_path / f"copy-of-{single.name}"
        copy.write_bytes(single.read_bytes())
        code, out, _ = crmbot("ingest", str(copy), "--json")
        assert (json.loads(out)["stored"], json.loads(out)["duplicate"]) == (0, 1)
    box = mailbox.mbox(tmp_path / "archive.mbox")
    for name in ("a.eml", "b.eml"):
        box.add((folder / name).read_bytes())
    box.flush()
    box.close()
    code, out, _ = crmbot("ingest", str(tmp_path / "archive.mbox"), "--json")
    assert json.loads(out)["duplicate"] == 2
    imap_account.append((folder / "a.eml").read_bytes(), (folder / "b.eml").read_bytes())
    from bot.mail.poller import MailboxPoller

    report = MailboxPoller(imap_account.settings(db.url), db).poll_once()
    assert (report.summary.stored, report.summary.duplicate) == (0, 2)
    assert len(_interactions(db)) == 2


def test_parallel_parsing_gives_the_same_result(db, tmp_path, make_mail):
    box = mailbox.mbox(tmp_path / "big.mbox")
    for i in range(80):
        box.add(make_mail(i, sender=f"p{i % 7}@firm{i % 7}.example"))
    box.flush()
    box.close()
    settings = Settings(
        _env_file=None, database_url=db.url, internal_domains=["ourco.com"], mail_parse_workers=2
    )
    report = ingest_path(tmp_path / "big.mbox", settings=settings, db=db, batch_size=40)
    assert report.summary.stored == 80
    assert {i.body for i in _interactions(db)} == {
        f"Hello, this is message number {i}." for i in range(80)
    }
    assert len(list(iter_messages(tmp_path / "big.mbox"))) == 80


def test_ingest_of_a_missing_path_is_a_clear_error(crmbot, tmp_path):
    code, _, err = crmbot("ingest", str(tmp_path / "nope"))
    assert code == 2 and "There is no file or folder" in err


def test_mail_inspect_prints_the_stable_json_keys(crmbot, tmp_path):
    path = tmp_path / "fwd.eml"
    path.write_bytes(_forward())
    code, out, _ = crmbot("mail", "inspect", str(path), "--json")
    assert code == 0
    data = json.loads(out)
    for key in (
        "forwarded",
        "original_sender",
        "from",
        "to",
        "cc",
        "date",
        "subject",
        "new_text",
        "quoted_text",
        "signature",
        "message_id",
        "in_reply_to",
        "references",
        "auto_reply",
        "attachments",
    ):
        assert key in data
    assert data["forwarded"] is True
    assert data["original_sender"] == {"name": "Jane Roe", "address": "jane@client.example"}
    assert data["subject"] == "Broken invoice"
    code, out, _ = crmbot("mail", "inspect", str(path))
    assert code == 0 and "jane@client.example" in out and "invoice total is wrong" in out


def test_mail_poll_once_and_status_against_dovecot(
    crmbot, db, imap_account, make_mail, monkeypatch
):
    imap_account.append(make_mail(1), make_mail(2), b"garbage without headers\r\n")
    for key, value in {
        "CRM_IMAP_HOST": "127.0.0.1",
        "CRM_IMAP_PORT": str(imap_account.port),
        "CRM_IMAP_SECURITY": "plaintext",
        "CRM_IMAP_USER": imap_account.user,
        "CRM_IMAP_PASSWORD": "secret",
        "CRM_IMAP_MAILBOX_NAME": "support",
    }.items():
        monkeypatch.setenv(key, value)
    code, out, err = crmbot("mail", "poll", "--once", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["fetched"], report["stored"], report["quarantined"]) == (3, 2, 1)
    code, out, _ = crmbot("mail", "status", "--json")
    status = json.loads(out)
    [box] = status["mailboxes"]
    assert box["mailbox"] == "support" and box["stored"] == 2 and box["last_success_at"]
    assert box["consecutive_failures"] == 0 and status["open_quarantine"] == 1
    code, out, _ = crmbot("mail", "status")
    assert code == 0 and "support" in out
    code, out, _ = crmbot("mail", "quarantine", "--json")
    [held] = json.loads(out)["messages"]
    assert held["reason"] == "not an email (no message headers)"
    assert held["origin"].startswith("imap:support UID ")

    # A wrong password is a configuration error with a clear message and a recorded failure.
    monkeypatch.setenv("CRM_IMAP_PASSWORD", "wrong")
    code, _, err = crmbot("mail", "poll", "--once")
    assert code == 2 and "refused the login" in err
    code, out, _ = crmbot("mail", "status", "--json")
    [box] = json.loads(out)["mailboxes"]
    assert box["consecutive_failures"] == 1 and box["error_state"] == "failing"
    code, out, _ = crmbot("mail", "status")
    assert "refused the login" in out and "recovered" not in out
    # Once the mailbox works again the old error is shown as what it is: past.
    monkeypatch.setenv("CRM_IMAP_PASSWORD", "secret")
    assert crmbot("mail", "poll", "--once")[0] == 0
    code, out, _ = crmbot("mail", "status", "--json")
    [box] = json.loads(out)["mailboxes"]
    assert box["error_state"] == "recovered" and box["recovered_at"] == box["last_success_at"]
    assert box["last_error"] and box["consecutive_failures"] == 0
    code, out, _ = crmbot("mail", "status")
    assert "recovered at" in out


def test_mail_poll_needs_a_configured_server(crmbot):
    code, _, err = crmbot("mail", "poll", "--once")
    assert code == 2 and "CRM_IMAP_HOST" in err


def test_runtime_reports_the_poller_off_without_a_server(db):
    from bot.mail.poller import MailboxPoller, poller_component
    from bot.runtime import Disabled

    off = poller_component(Settings(_env_file=None, database_url=db.url), db)
    assert isinstance(off, Disabled) and "CRM_IMAP_HOST" in off.reason
    on = poller_component(
        Settings(
            _env_file=None,
            database_url=db.url,
            imap_host="imap.example.com",
            imap_user="crm@ourco.com",
            imap_password="x",
        ),
        db,
    )
    assert isinstance(on, MailboxPoller)


def test_oauth2_token_comes_from_the_configured_command(tmp_path):
    from bot.mail.imap_auth import MailConfigError, oauth2_token

    script = tmp_path / "token.sh"
    script.write_text("#!/bin/sh\necho\necho ya29.token-value\n")
    script.chmod(0o755)
    assert oauth2_token(str(script)) == "ya29.token-value"
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\necho 'refresh token expired' >&2\nexit 3\n")
    failing.chmod(0o755)
    with pytest.raises(MailConfigError, match="status 3. refresh token expired"):
        oauth2_token(str(failing))
    with pytest.raises(MailConfigError, match="could not run"):
        oauth2_token(str(tmp_path / "missing"))


NUL_MAIL = (
    b"From: Jane\x00 Roe <jane@client.example>\r\nTo: support@ourco.com\r\n"
    b"Subject: Order\x00 42\r\nMessage-ID: <nul1@client.example>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
    b'Content-Type: text/plain; charset="utf-8\x00junk"\r\n\r\n'
    b"Hello\x00 there, order 42 is late.\r\n"
    b'--b1\r\nContent-Type: application/pdf; name="in\x00voice.pdf"\r\n'
    b'Content-Disposition: attachment; filename="in\x00voice.pdf"\r\n\r\n%PDF\x00\r\n--b1--\r\n'
)


def test_nul_bytes_in_text_and_charset_are_stored_on_every_database(db, tmp_path, crmbot):
    """PostgreSQL text cannot hold NUL: the text loses it, the raw message keeps it."""
    (tmp_path / "nul.eml").write_bytes(NUL_MAIL)
    code, out, _ = crmbot("ingest", str(tmp_path / "nul.eml"), "--json")
    assert code == 0 and json.loads(out)["stored"] == 1
    [stored] = _interactions(db)
    assert stored.body == "Hello there, order 42 is late."
    assert stored.subject == "Order 42" and stored.author == "Jane Roe <jane@client.example>"
    assert stored.meta["attachments"][0]["name"] == "invoice.pdf"
    # Unusable mail with NULs is quarantined with its raw bytes intact.
    broken = NUL_MAIL.replace(b"From: Jane\x00 Roe <jane@client.example>\r\n", b"")
    broken = broken.replace(b"<nul1@", b"<nul2@")
    (tmp_path / "broken.eml").write_bytes(broken)
    code, out, _ = crmbot("ingest", str(tmp_path / "broken.eml"), "--json")
    assert json.loads(out)["quarantined"] == 1
    with db.session() as session:
        held = session.exec(select(QuarantinedMessage)).one()
    assert held.raw == broken and held.subject == "Order 42"


CASES = Path(__file__).parent / "cases"


def test_list_and_report_mail_is_ignored_with_a_trace_and_creates_no_lead(db, crmbot, tmp_path):
    code, out, _ = crmbot("ingest", str(CASES / "list_and_bounce"), "--json")
    report = json.loads(out)
    assert (report["stored"], report["ignored"]) == (0, 8)
    with db.session() as session:
        assert session.exec(select(func.count()).select_from(Customer)).one() == 0
    code, out, _ = crmbot("mail", "ignored", "--json")
    listed = json.loads(out)
    assert (listed["total"], listed["shown"]) == (8, 8)
    by_file = {Path(m["origin"].split(" ", 1)[1]).name: m for m in listed["messages"]}
    digest = by_file["mailman_mime_digest.eml"]
    assert digest["subject"] == "Users Digest, Vol 42, Issue 7"
    assert digest["sender"] == "users-request@lists.opensource.example"
    assert "X-Mailman-Version" in digest["reason"] and digest["sent_at"].startswith("2021-11-20")
    assert "automatic reply" in by_file["postfix_dsn_bounce.eml"]["reason"]
    code, out, _ = crmbot("mail", "ignored", "--limit", "3")
    assert code == 0 and "Showing 3 of 8 ignored (--limit N or --all for more)." in out
    assert "failure notice" in out and "where: ingest:list_and_bounce " in out


def test_quarantine_lists_where_and_what_and_says_how_many_more(db, crmbot, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):
        # A subject and a date, but no sender: unusable.
        (folder / f"{i}.eml").write_bytes(
            f"Subject: Broken {i}\r\nDate: Tue, 02 Nov 2021 09:2{i}:00 +0000\r\n"
            f"Message-ID: <bad{i}@x.example>\r\n\r\nno sender\r\n".encode()
        )
    assert json.loads(crmbot("ingest", str(folder), "--json")[1])["quarantined"] == 3
    code, out, _ = crmbot("mail", "quarantine", "--limit", "2")
    assert code == 0 and "Showing 2 of 3 in quarantine (--limit N or --all for more)." in out
    assert "2.eml" in out and "Broken 2" in out and "no sender address" in out
    code, out, _ = crmbot("mail", "quarantine", "--all", "--json")
    data = json.loads(out)
    assert (data["total"], data["shown"]) == (3, 3)
    newest = data["messages"][0]
    assert newest["origin"] == f"ingest:bad {folder.resolve() / '2.eml'}"
    assert (newest["subject"], newest["message_id"]) == ("Broken 2", "bad2@x.example")
    assert newest["sent_at"] == "2021-11-02T09:22:00+00:00"
    assert crmbot("mail", "quarantine", "--limit", "0")[0] == 2


@pytest.mark.parametrize(
    "content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x1b[2J\xff", b"%PDF-1.7\n\x00\x01", b""]
)
def test_mail_inspect_of_something_that_is_no_mail_is_a_one_line_error(crmbot, tmp_path, content):
    path = tmp_path / "picture.png"
    path.write_bytes(content)
    code, out, err = crmbot("mail", "inspect", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "is not an email message" in err
    assert "\x1b" not in err
