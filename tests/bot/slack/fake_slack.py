"""A local stand-in for Slack's cloud: the Web API (``/api/<method>``) and response URLs.

It records every call so tests can assert on what the bot sent, answers like Slack does,
can be told to fail (429 with Retry-After, 5xx) to exercise the client's retries, and can
be told to answer slowly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    # time.monotonic() when the answer was sent (None while a delayed answer is pending)
    answered_at: float | None = None


@dataclass
class FakeSlack:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    socket_url: str | None = None
    team_id: str = "THOME0001"
    calls: list[Call] = field(default_factory=list)
    # method -> list of (status, headers) answered before the method succeeds
    failures: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    overrides: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)
    # method -> seconds to wait before answering: a slow Slack
    delays: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._ts = 1_700_000_000

    # ------------------------------------------------------------ control

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, key: str) -> str:
        return f"{self.url}/respond/{key}"

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _params(self) -> dict[str, Any]:
                parts = urlsplit(self.path)
                params: dict[str, Any] = dict(parse_qsl(parts.query))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                if raw:
                    if (self.headers.get("Content-Type") or "").startswith("application/json"):
                        params.update(json.loads(raw))
                    else:
                        params.update(dict(parse_qsl(raw)))
                return params

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                path = urlsplit(self.path).path
                params = self._params()
                headers = {k.lower(): v for k, v in self.headers.items()}
                if path.startswith("/respond/"):
                    fake._record(
                        Call("respond", params | {"_key": path.rsplit("/", 1)[-1]}, headers)
                    )
                    self._answer(200, {"ok": True})
                    return
                method = path.removeprefix("/api/")
                pending = fake.failures.get(method)
                if pending:
                    status, extra = pending.pop(0)
                    fake._record(Call(method + ":failed", params, headers))
                    self._answer(
                        status,
                        {"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"},
                        extra,
                    )
                    return
                call = Call(method, params, headers)
                fake._record(call)
                if fake.delays.get(method):
                    time.sleep(fake.delays[method])
                self._answer(200, fake.answer(method, params))
                call.answered_at = time.monotonic()

            do_GET = _handle
            do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def calls_to(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        """The calls to ``method`` once there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [c for c in self.calls if c.method == method]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({c.method for c in self.calls})
                    raise AssertionError(
                        f"expected {count} call(s) to {method}, got {len(found)}; saw {seen}"
                    )
                self._cond.wait(left)

    def reset(self) -> None:
        with self._cond:
            self.calls.clear()

    # ------------------------------------------------------------ answers

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method in self.overrides:
            return self.overrides[method](params)
        if method == "auth.test":
            return {
                "ok": True,
                "user": "crmbot",
                "user_id": "UBOT00001",
                "bot_id": "B_BOT",
                "team": "Home",
                "team_id": self.team_id,
                "url": "https://home.example/",
            }
        if method == "bots.info":
            return {"ok": True, "bot": {"id": params.get("bot"), "app_id": "ACRMBOT01"}}
        if method == "users.info":
            user = self.users.get(params.get("user", ""))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "chat.postMessage":
            self._ts += 1
            return {"ok": True, "channel": params.get("channel"), "ts": f"{self._ts}.000100"}
        if method in ("views.open", "views.publish", "views.update"):
            view = params.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            return {"ok": True, "view": {"id": "V1", **(view or {})}}
        if method == "chat.getPermalink":
            channel, ts = params.get("channel"), params.get("message_ts", "")
            return {
                "ok": True,
                "channel": channel,
                "permalink": f"https://home.example/archives/{channel}/p{ts.replace('.', '')}",
            }
        if method == "conversations.replies":
            messages = self.threads.get((params.get("channel", ""), params.get("ts", "")))
            if messages is None:
                return {"ok": False, "error": "thread_not_found"}
            return {"ok": True, "messages": messages, "has_more": False}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D_" + str(params.get("users", "X"))}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": "1.1"}
        if method == "apps.connections.open":
            if not self.socket_url:
                return {"ok": False, "error": "not_allowed_token_type"}
            return {"ok": True, "url": self.socket_url}
        return {"ok": True}


def slack_user(
    user_id: str,
    name: str,
    email: str,
    *,
    tz: str = "Europe/Berlin",
    team: str = "THOME0001",
    stranger: bool = False,
) -> dict[str, Any]:
    """A users.info ``user`` object as Slack returns it."""
    user: dict[str, Any] = {
        "id": user_id,
        "team_id": team,
        "name": name.split()[0].lower(),
        "real_name": name,
        "tz": tz,
        "is_bot": False,
        "profile": {"real_name": name, "email": email, "team": team},
    }
    if stranger:
        user["is_stranger"] = True
    return user
