"""`crmbot ingest` and `crmbot mail ...`: .eml files, folders, mbox, Maildir; the CLI surface."""

from __future__ import annotations

import json
import mailbox
from email.message import EmailMessage

import pytest
from sqlmodel import col, func, select

from bot.mail.ingest import content_hash, ingest_path, iter_messages
from crm.config import Settings
from crm.models import Interaction, QuarantinedMessage


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
    assert _interactions(db)[0].source == "imap:support"


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
    assert json.loads(out)[0]["reason"] == "not an email (no message headers)"

    # A wrong password is a configuration error with a clear message and a recorded failure.
    monkeypatch.setenv("CRM_IMAP_PASSWORD", "wrong")
    code, _, err = crmbot("mail", "poll", "--once")
    assert code == 2 and "refused the login" in err
    code, out, _ = crmbot("mail", "status", "--json")
    assert json.loads(out)["mailboxes"][0]["consecutive_failures"] == 1


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
