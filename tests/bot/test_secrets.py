"""Secrets never show: settings that hold one are SecretStr, and a run of the command line and
of the Slack app (logs at DEBUG, --json output, errors, every message sent to Slack) carries
none of the secret values."""

from __future__ import annotations

import json
import logging
import re
import typing

from pydantic import SecretStr

from crm.config import Settings

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-SEKRIT-bot-token-4711",
    "SLACK_SIGNING_SECRET": "SEKRIT-signing-secret-4712",
    "SLACK_APP_TOKEN": "xapp-SEKRIT-app-token-4713",
    "CRM_SMTP_PASSWORD": "SEKRIT-smtp-password-4714",
    "CRM_IMAP_PASSWORD": "SEKRIT-imap-password-4715",
    "CRM_SECRET_KEY": "SEKRIT-secret-key-4716",
    "CRM_HMAC_KEY": "SEKRIT-hmac-key-4717",
}
SECRET_NAME = re.compile(r"(password|secret|token|_key)$")


def test_every_setting_that_holds_a_secret_is_a_secretstr():
    names = [n for n in Settings.model_fields if SECRET_NAME.search(n)]
    assert set(names) >= {"slack_bot_token", "smtp_password", "imap_password", "hmac_key"}
    for name in names:
        annotation = Settings.model_fields[name].annotation
        assert SecretStr in typing.get_args(annotation) or annotation is SecretStr, name


def test_settings_never_print_their_secrets(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert not [v for v in SECRETS.values() if v in shown]


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_a_command_line_run_shows_no_secret(crmbot, db, monkeypatch, caplog, tmp_path):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CRM_SMTP_PORT", "9")  # nothing listens: the send fails, and says so
    monkeypatch.setenv("CRM_SMTP_USERNAME", "crmbot")
    monkeypatch.setenv("CRM_SMTP_SECURITY", "none")
    monkeypatch.setenv("CRM_IMAP_HOST", "127.0.0.1")
    monkeypatch.setenv("CRM_IMAP_PORT", "9")
    monkeypatch.setenv("CRM_IMAP_USER", "support@ourco.com")
    monkeypatch.setenv("CRM_TIMEZONE", "Europe/Berlin")
    caplog.set_level(logging.DEBUG)
    runs = [
        ("-v", "user", "add", "Ada", "--email", "ada@ourco.com", "--role", "admin", "--json"),
        ("-v", "customer", "add", "Jane", "--email", "jane@acme.com", "--json"),
        ("-v", "customer", "show", "jane@acme.com", "--json"),
        ("-v", "customer", "export", "jane@acme.com"),
        ("-v", "deal", "add", "jane@acme.com", "Plan", "--amount", "10", "--json"),
        ("-v", "followup", "add", "jane@acme.com", "tomorrow 9am", "call", "--json"),
        ("-v", "digest", "send", "followups", "--json"),
        ("-v", "mail", "poll", "--once", "--json"),
        ("-v", "audit", "export", "--since", "2000-01-01", "--json"),
        ("-v", "backup", str(tmp_path / "b.tar"), "--json"),
        ("-v", "retention", "status", "--json"),
        ("-v", "customer", "forget", "jane@acme.com", "--reason", "asked", "--json"),
        ("-v", "slack", "manifest", "--json"),
        ("-v", "customer", "show", "nobody@nowhere.test"),
    ]
    seen, codes = [], {}
    for args in runs:
        code, out, err = crmbot(*args)
        codes[args[1:3]] = code
        seen.append(f"{args}: {code}\n{out}\n{err}")
    assert codes[("customer", "forget")] == 0 and codes[("backup", str(tmp_path / "b.tar"))] == 0
    assert codes[("mail", "poll")] != 0  # the IMAP login error is shown, without the password
    seen.append(caplog.text)
    assert "jane@acme.com" in seen[1]  # the run did something
    text = "\n".join(seen)
    assert _leaks(text) == [], text[-3000:]
    audit = json.loads(crmbot("audit", "verify", "--json")[1])
    assert audit["ok"]


def test_a_slack_run_sends_no_secret(slack, fake_slack, db, admin, caplog):
    from tests.factories import add_customer

    caplog.set_level(logging.DEBUG)
    add_customer(db, admin, name="Acme", email="jane@acme.com")
    texts = [
        slack.command(c).text
        for c in ("help", "show jane@acme.com", "find acme", "log acme.com: hi", "frob")
    ]
    token = "xoxb-test"  # the harness's bot token: sent in the Authorization header only
    bodies = json.dumps([c.params for c in fake_slack.calls], default=str)
    assert token not in bodies and token not in "\n".join(texts) + caplog.text
    assert "test-signing-secret" not in bodies + caplog.text
