"""The Slack harness: the app on a local port, a fake Slack Web API, and signed requests as
Slack sends them. The fixtures that use it are in tests/bot/conftest.py."""

from __future__ import annotations

import http.client
import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from slack_sdk.signature import SignatureVerifier

from bot.slack.app import create_app
from bot.slack.runtime import SlackHTTPComponent
from crm.config import Settings
from crm.db import Database
from crm.models import Role
from tests.bot.slack.fake_slack import FakeSlack

SECRET = "test-signing-secret"

PEOPLE = {
    "UADMIN001": ("Ada Admin", "ada@ourco.com", Role.admin),
    "UMGR00001": ("Max Manager", "max@ourco.com", Role.manager),
    "UREP00001": ("Rita Rep", "rita@ourco.com", Role.rep),
    "UREP00002": ("Ray Rep", "ray@ourco.com", Role.rep),
    "UVIEW0001": ("Vic Viewer", "vic@ourco.com", Role.viewer),
}


@dataclass
class Reply:
    status: int
    body: str
    respond: dict[str, Any] | None

    @property
    def text(self) -> str:
        """Everything the user sees: the fallback text and every block's text, joined."""
        if not self.respond:
            return ""
        return self.respond.get("text", "") + "\n" + blocks_text(self.respond.get("blocks") or [])


def blocks_text(blocks: list[dict[str, Any]]) -> str:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(out)


class SlackClientSim:
    """Sends what Slack sends: signed, form-encoded commands and interactivity, JSON events."""

    def __init__(self, base_url: str, fake: FakeSlack, secret: str = SECRET) -> None:
        self.base_url = base_url
        self.fake = fake
        self.verifier = SignatureVerifier(secret)
        self._keys = itertools.count(1)

    def post(
        self,
        body: str,
        content_type: str,
        *,
        sign: bool = True,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
        path: str = "/slack/events",
    ) -> tuple[int, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        all_headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts}
        if sign:
            all_headers["X-Slack-Signature"] = self.verifier.generate_signature(
                timestamp=ts, body=body
            )
        all_headers.update(headers or {})
        parts = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
        try:
            conn.request("POST", path, body=body.encode(), headers=all_headers)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def command(
        self, text: str, *, user: str = "UADMIN001", channel: str = "C0GEN0001", wait: bool = True
    ) -> Reply:
        key = f"cmd{next(self._keys)}"
        form = {
            "token": "legacy",
            "team_id": self.fake.team_id,
            "team_domain": "home",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/crm",
            "text": text,
            "api_app_id": "A1",
            "response_url": self.fake.response_url(key),
            "trigger_id": f"trigger-{key}",
        }
        status, body = self.post(urlencode(form), "application/x-www-form-urlencoded")
        respond = None
        if wait and status == 200:
            respond = self.wait_respond(key)
        return Reply(status, body, respond)

    def wait_respond(self, key: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.fake.calls_to("respond"):
                if call.params.get("_key") == key:
                    return call.params
            time.sleep(0.01)
        raise AssertionError(
            f"no respond() for {key}; calls: {[c.method for c in self.fake.calls]}"
        )

    def interactive(self, payload: dict[str, Any]) -> tuple[int, str]:
        return self.post(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        )

    def block_action(
        self,
        action: dict[str, Any],
        *,
        user: str = "UADMIN001",
        view: dict[str, Any] | None = None,
        wait: bool = True,
    ) -> Reply:
        key = f"act{next(self._keys)}"
        payload: dict[str, Any] = {
            "type": "block_actions",
            "team": {"id": self.fake.team_id},
            "user": {"id": user},
            "api_app_id": "A1",
            "trigger_id": f"trigger-{key}",
            "actions": [action],
            "container": {"type": "message"},
            "channel": {"id": "C0GEN0001"},
        }
        if view is not None:
            payload["view"] = view
            payload["container"] = {"type": "view", "view_id": "V1"}
        else:
            payload["response_url"] = self.fake.response_url(key)
        status, body = self.interactive(payload)
        respond = self.wait_respond(key) if wait and view is None and status == 200 else None
        return Reply(status, body, respond)

    def submit(
        self,
        callback_id: str,
        values: dict[str, dict[str, Any]],
        *,
        user: str = "UADMIN001",
        private_metadata: str = "",
        blocks: list[dict[str, Any]] | None = None,
    ) -> tuple[int, str]:
        payload = {
            "type": "view_submission",
            "team": {"id": self.fake.team_id},
            "user": {"id": user},
            "api_app_id": "A1",
            # Slack gives every interaction its own trigger: two submissions never sign alike.
            "trigger_id": f"trigger-view-{next(self._keys)}",
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "blocks": blocks or [{"type": "input", "block_id": b} for b in values],
                "state": {"values": values},
            },
        }
        return self.interactive(payload)

    def event(
        self, event: dict[str, Any], *, retry: int | None = None, event_id: str = "Ev1"
    ) -> tuple[int, str]:
        body = {
            "token": "legacy",
            "team_id": self.fake.team_id,
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
        headers = (
            {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            if retry
            else None
        )
        return self.post(json.dumps(body), "application/json", headers=headers)

    def options(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "UADMIN001",
        view: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        payload = {
            "type": "block_suggestion",
            "team": {"id": self.fake.team_id},
            "user": {"id": user},
            "api_app_id": "A1",
            "action_id": action_id,
            "block_id": "b",
            "value": value,
            "view": view or {"id": "V1", "type": "modal", "state": {"values": {}}},
        }
        status, body = self.interactive(payload)
        return status, (json.loads(body) if body else None)


@contextmanager
def served(
    db: Database,
    settings: Settings,
    fake: FakeSlack,
    *,
    answer_on_ack: bool,
    listener_slots: int | None = None,
) -> Iterator[SlackClientSim]:
    app = create_app(settings, db, process_before_response=True)
    server = SlackHTTPComponent(
        app,
        db,
        host="127.0.0.1",
        port=0,
        signing_secret=SECRET,
        answer_on_ack=answer_on_ack,
        listener_slots=listener_slots,
    )
    server.start()
    try:
        yield SlackClientSim(server.url, fake)
    finally:
        server.stop()
