"""respond() through the shared connection pool, against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.slack.respond import ConnectionPool, PooledRespond


class ResponseURLServer:
    """Records each POST with the client port it came from; can drop connections after answering."""

    def __init__(self) -> None:
        self.received: list[tuple[int, dict[str, Any]]] = []
        self.status = 200
        self.drop_after_answer = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.received.append((self.client_address[1], json.loads(body)))
                data = b'{"ok": true}' if server.status == 200 else b"no_such_url"
                self.send_response(server.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                # Like a server whose keep-alive timeout ran out: closes without saying so.
                self.close_connection = server.drop_after_answer

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/respond/{key}"


@pytest.fixture
def server() -> Iterator[ResponseURLServer]:
    s = ResponseURLServer()
    yield s
    s.http.shutdown()
    s.http.server_close()


def test_replies_reuse_one_connection_and_keep_bolts_message_shape(server: ResponseURLServer):
    pool = ConnectionPool()
    for i in range(5):
        answer = PooledRespond(response_url=server.url(f"k{i}"), pool=pool)(
            text=f"card {i}",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
            response_type="ephemeral",
        )
        assert answer.status_code == 200 and json.loads(answer.body) == {"ok": True}
    assert [body for _port, body in server.received] == [
        {
            "text": f"card {i}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
            "response_type": "ephemeral",
        }
        for i in range(5)
    ]
    assert len({port for port, _body in server.received}) == 1
    pool.close()


def test_a_connection_the_server_closed_is_replaced_and_nothing_is_sent_twice(
    server: ResponseURLServer,
):
    server.drop_after_answer = True
    pool = ConnectionPool()
    for i in range(4):
        PooledRespond(response_url=server.url(f"k{i}"), pool=pool)({"text": f"reply {i}"})
    assert [body["text"] for _port, body in server.received] == [f"reply {i}" for i in range(4)]
    assert len({port for port, _body in server.received}) == 4
    pool.close()


def test_an_error_status_is_returned_like_bolts_client_does(server: ResponseURLServer):
    server.status = 404
    answer = PooledRespond(response_url=server.url("gone"), pool=ConnectionPool())(
        {"text": "x", "replace_original": True}
    )
    assert answer.status_code == 404 and answer.body == "no_such_url"
    assert server.received[0][1] == {"text": "x", "replace_original": True}


def test_without_a_response_url_respond_says_so():
    with pytest.raises(ValueError, match="no response_url"):
        PooledRespond(response_url=None)("hi")


def test_an_unreachable_url_raises():
    pool = ConnectionPool(timeout=2)
    with pytest.raises(OSError):
        PooledRespond(response_url="http://127.0.0.1:9/respond/x", pool=pool)("hi")


def test_a_reply_that_timed_out_is_not_sent_again(server: ResponseURLServer):
    import time

    slow_before = server.http.RequestHandlerClass.do_POST

    def slow(handler) -> None:
        time.sleep(1.5)
        slow_before(handler)

    server.http.RequestHandlerClass.do_POST = slow  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        PooledRespond(response_url=server.url("late"), pool=ConnectionPool(timeout=0.5))("hi")
    time.sleep(1.5)
    assert [body["text"] for _port, body in server.received] == ["hi"]
