"""A real SMTP server (aiosmtpd) with STARTTLS and AUTH, and a local stand-in for Slack's Web API."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


class SMTPRecorder:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"


class SMTPServer:
    def __init__(self, tls_files: tuple[Path, Path]) -> None:
        self.port = free_port()
        self.recorder = SMTPRecorder()
        self.tls_files = tls_files
        self.controller = None

    def start(self) -> None:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, self.tls_files))
        recorder = self.recorder

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"crmbot" and auth_data.password == b"s3cret"
            if ok:
                recorder.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, tls_context=context,
                                     require_starttls=True, authenticator=authenticator, auth_require_tls=True)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server(tls_files) -> Iterator[SMTPServer]:
    server = SMTPServer(tls_files)
    server.start()
    yield server
    server.stop()


class FakeSlack:
    """Records Web API calls; answers like Slack does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail_next: list[tuple[int, dict, dict]] = []  # (status, body, headers)
        self.fail_after: int | None = None  # answer every call after this many with an error
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                method = self.path.strip("/").split("/")[-1]
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                if fake.fail_after is not None and len(fake.calls) >= fake.fail_after:
                    fake.fail_next.append((200, {"ok": False, "error": "channel_not_found"}, {}))
                if fake.fail_next:
                    status, payload, headers = fake.fail_next.pop(0)
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps(payload).encode())
                    return
                fake.calls.append((method, body))
                if method == "conversations.open":
                    payload = {"ok": True, "channel": {"id": "D" + str(body.get("users", "X"))}}
                elif method == "auth.test":
                    payload = {"ok": True, "team_id": "T0TEAM", "bot_id": "B0BOT"}
                elif method == "bots.info":
                    payload = {"ok": True, "bot": {"id": body.get("bot"), "app_id": "A0CRMBOT"}}
                elif method == "chat.postMessage":
                    payload = {"ok": True, "channel": body.get("channel"), "ts": f"{len(fake.calls)}.000100"}
                else:
                    payload = {"ok": True}
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(payload).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def posts(self) -> list[dict]:
        return [body for method, body in self.calls if method == "chat.postMessage"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()
