"""One-click unsubscribe: a signed link in digest emails, served by crmbot's HTTP endpoint."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest

from bot.scheduler import DigestService
from bot.slack.app import create_app
from bot.slack.runtime import SlackHTTPComponent
from crm.config import Settings
from crm.models import FollowUp, Role, User
from crm.services import digest_runs
from crm.services.errors import CRMError
from tests.factories import add_customer


def test_token_round_trip_and_tampering():
    token = digest_runs.unsubscribe_token("k3y", user_id=7, kind="followups", channel="email")
    assert digest_runs.read_unsubscribe_token("k3y", token) == (7, "followups", "email")
    with pytest.raises(CRMError):
        digest_runs.read_unsubscribe_token("other-key", token)
    with pytest.raises(CRMError):
        digest_runs.read_unsubscribe_token("k3y", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    with pytest.raises(CRMError):
        digest_runs.read_unsubscribe_token("k3y", "garbage")


def _call(url: str, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_digest_email_link_unsubscribes_after_a_click_on_the_page(db, admin, tmp_path):
    with db.transaction() as s:
        rep = User(name="Rita Rep", email="rita@ourco.com", role=Role.rep, timezone="Europe/Berlin")
        s.add(rep)
        s.flush()
        rep_id = rep.id
    customer = add_customer(db, admin, "Dora Due", "dora@due.com", owner_id=rep_id)
    with db.transaction() as s:
        s.add(FollowUp(customer_id=customer.id, owner_id=rep_id, due_at=datetime(2026, 11, 20, 9, tzinfo=UTC), note="x"))
    settings = Settings(_env_file=None, database_url=db.url, timezone="Europe/Berlin",  # type: ignore[call-arg]
                        outbox_dir=str(tmp_path / "outbox"), public_url="http://127.0.0.1:1", secret_key="k3y",
                        slack_bot_token="xoxb-test", slack_signing_secret="s")
    server = SlackHTTPComponent(create_app(settings, db), db, host="127.0.0.1", port=0, signing_secret="s", settings=settings)
    server.start()
    try:
        service = DigestService(settings, db, slack=None)
        assert [d.status for d in service.tick(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))] == ["sent"]
        from email import message_from_bytes, policy

        [eml] = list((tmp_path / "outbox").glob("*.eml"))
        msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = msg["List-Unsubscribe"].split(">")[0].lstrip("<")
        assert link.startswith("http://127.0.0.1:1/digests/unsubscribe?t=")
        local = server.url + link.removeprefix("http://127.0.0.1:1")
        status, page = _call(local)  # a mail scanner opening the link changes nothing
        assert status == 200 and "<form method='post'>" in page
        with db.session() as s:
            assert not digest_runs.opted_out(s, user_id=rep_id, kind="followups", channel="email")
        status, page = _call(local, data=b"List-Unsubscribe=One-Click")
        assert status == 200 and "no longer get" in page
        with db.session() as s:
            assert digest_runs.opted_out(s, user_id=rep_id, kind="followups", channel="email")
        status, page = _call(server.url + "/digests/unsubscribe?t=forged", data=b"")
        assert status == 400 and "not valid" in page
    finally:
        server.stop()


def test_customer_link_token_round_trip_tampering_and_no_mix_up_with_unsubscribe():
    token = digest_runs.customer_link_token("k3y", user_id=7, customer_id=42)
    assert digest_runs.read_customer_link_token("k3y", token) == (7, 42)
    unsubscribe = digest_runs.unsubscribe_token("k3y", user_id=7, kind="churn", channel="email")
    for bad in ("", "garbage", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], unsubscribe):
        with pytest.raises(CRMError):
            digest_runs.read_customer_link_token("k3y", bad)
    with pytest.raises(CRMError):
        digest_runs.read_customer_link_token("other-key", token)
    with pytest.raises(CRMError):
        digest_runs.read_unsubscribe_token("k3y", token)
