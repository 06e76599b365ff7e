"""``respond()`` over kept-alive connections.

Bolt's ``respond()`` builds a new ``WebhookClient`` per reply: a new connection and, against
Slack, a new TLS handshake for every card a user asks for. Replies all go to the same host, so
here they share a small pool of open connections instead. Same message shape, same answer
(a ``WebhookResponse``); a proxy setting falls back to Bolt's own client.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from slack_bolt.context.respond import Respond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk.webhook import WebhookResponse

TIMEOUT_SECONDS = 30.0
MAX_IDLE_PER_HOST = 8

_Origin = tuple[str, str, int]
_CLOSED_BY_SERVER = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class ConnectionPool:
    """Idle HTTP(S) connections per origin, taken by one request at a time."""

    def __init__(self, max_idle: int = MAX_IDLE_PER_HOST, timeout: float = TIMEOUT_SECONDS):
        self.max_idle = max_idle
        self.timeout = timeout
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._default_tls: ssl.SSLContext | None = None

    def _connect(self, origin: _Origin, tls: ssl.SSLContext | None) -> http.client.HTTPConnection:
        scheme, host, port = origin
        if scheme == "https":
            if tls is None:
                if self._default_tls is None:
                    self._default_tls = ssl.create_default_context()
                tls = self._default_tls
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=tls)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _take(self, origin: _Origin) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(origin)
            return idle.pop() if idle else None

    def _give(self, origin: _Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle:
                idle.append(conn)
                return
        conn.close()

    def post_json(
        self, url: str, payload: dict[str, Any], tls: ssl.SSLContext | None = None
    ) -> WebhookResponse:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        origin = (
            parts.scheme,
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
        )
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json;charset=utf-8"}
        for attempt in (1, 2):
            reused = self._take(origin)
            conn = reused or self._connect(origin, tls)
            try:
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except _CLOSED_BY_SERVER:
                # A kept-alive connection the server has closed since: the reply never got
                # there, so it goes once more on a fresh connection.
                conn.close()
                if reused is None or attempt == 2:
                    raise
                continue
            except (OSError, http.client.HTTPException):
                conn.close()  # a timeout or a broken answer: the reply may have arrived
                raise
            if response.will_close:
                conn.close()
            else:
                self._give(origin, conn)
            return WebhookResponse(
                url=url,
                status_code=response.status,
                body=data.decode("utf-8", "replace"),
                headers=dict(response.getheaders()),
            )
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


_POOL = ConnectionPool()


class PooledRespond(Respond):
    """Bolt's ``respond()``, sending through the shared connection pool."""

    def __init__(
        self,
        *,
        response_url: str | None,
        proxy: str | None = None,
        ssl: ssl.SSLContext | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        super().__init__(response_url=response_url, proxy=proxy, ssl=ssl)
        self.pool = pool or _POOL

    def __call__(  # type: ignore[override]
        self,
        text: str | dict[str, Any] = "",
        blocks: Sequence[Any] | None = None,
        attachments: Sequence[Any] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        if self.proxy:  # our pool speaks to Slack directly; Bolt's client knows proxies
            return super().__call__(
                text,
                blocks,
                attachments,
                response_type,
                replace_original,
                delete_original,
                unfurl_links,
                unfurl_media,
                thread_ts,
                metadata,
            )
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        if isinstance(text, dict):
            message = _build_message(**text)
        elif isinstance(text, str):
            message = _build_message(
                text=text,
                blocks=blocks,
                attachments=attachments,
                response_type=response_type,
                replace_original=replace_original,
                delete_original=delete_original,
                unfurl_links=unfurl_links,
                unfurl_media=unfurl_media,
                thread_ts=thread_ts,
                metadata=metadata,
            )
        else:
            raise ValueError(f"The arg is unexpected type ({type(text)})")
        return self.pool.post_json(self.response_url, message, tls=self.ssl)
