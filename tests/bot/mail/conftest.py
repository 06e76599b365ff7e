"""A real Dovecot IMAP server for the mail tests.

One server per test process (so per xdist worker), on a free port of 127.0.0.1, in its own
temporary folder, stopped and removed at the end. Each test gets its own IMAP account (the
passwd file is re-read by Dovecot when it changes), so tests never see each other's mail.
Dovecot refuses to run mail as root: when the tests run as root, Dovecot runs as ``nobody``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

from crm.config import Settings

PASSWORD = "secret"
_ACCOUNTS = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class DovecotServer:
    root: Path
    port: int
    tls_port: int
    cert: Path
    run_as: str
    uid: int
    gid: int
    _users: itertools.count  # type: ignore[type-arg]

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    def add_user(self) -> str:
        """A fresh account. The accounts are all in the passwd file from the start: Dovecot
        notices a changed file by its mtime, which misses two changes within one second."""
        n = next(self._users)
        if n >= _ACCOUNTS:
            raise RuntimeError("the test Dovecot ran out of accounts; raise _ACCOUNTS")
        user = f"u{n}"
        home = self.root / "mail" / user
        home.mkdir(parents=True)
        os.chown(home, self.uid, self.gid)
        return user

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            ["doveadm", "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user / "Maildir"


def _start(root: Path) -> DovecotServer:
    run_as = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    entry = pwd.getpwnam(run_as)
    group = "nogroup" if os.geteuid() == 0 else None
    gid = entry.pw_gid
    group_name = (
        group
        or subprocess.run(
            ["id", "-gn", run_as], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "passwd").write_text(
        "".join(
            f"u{n}:{{PLAIN}}{PASSWORD}:{entry.pw_uid}:{gid}::{root}/mail/u{n}::\n"
            for n in range(_ACCOUNTS)
        )
    )
    port = _free_port()
    tls_port = _free_port()
    cert = root / "cert.pem"
    key = root / "key.pem"
    # A self-signed certificate for 127.0.0.1: TLS is tested with verification on.
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (root / "dovecot.conf").write_text(
        f"""base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {run_as}
default_internal_group = {group_name}
default_login_user = {run_as}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 50
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    if os.geteuid() == 0:
        for path in [root, *root.rglob("*")]:
            os.chown(path, entry.pw_uid, gid)
    subprocess.run(["dovecot", "-c", str(root / "dovecot.conf")], check=True, timeout=30)
    if not (_wait_for_port(port) and _wait_for_port(tls_port)):
        log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
        raise RuntimeError(f"Dovecot did not start on port {port}:\n{log}")
    return DovecotServer(root, port, tls_port, cert, run_as, entry.pw_uid, gid, itertools.count(0))


def _stop(server: DovecotServer) -> None:
    pid_file = server.root / "run" / "master.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().strip())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    for tool in ("dovecot", "doveadm", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install dovecot-imapd)")
    # Not under pytest's tmp dirs: those are private to the test user, and Dovecot may run
    # as nobody.
    root = Path(tempfile.mkdtemp(prefix="crmbot-dovecot-"))
    root.chmod(0o755)
    server = _start(root)
    try:
        yield server
    finally:
        _stop(server)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class ImapAccount:
    server: DovecotServer
    user: str

    @property
    def port(self) -> int:
        return self.server.port

    def settings(self, db_url: str, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": db_url,
            "internal_domains": ["ourco.com"],
            "imap_host": "127.0.0.1",
            "imap_port": self.port,
            "imap_security": "plaintext",
            "imap_user": self.user,
            "imap_password": PASSWORD,
            "imap_mailbox_name": self.user,
            "imap_timeout_seconds": 10,
            "imap_backoff_max_seconds": 0.5,
            "imap_lease_seconds": 6,
            "imap_poll_seconds": 5,  # the safety-net re-sync, so a missed IDLE notice costs seconds
            "mail_parse_workers": 1,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.user, PASSWORD)
        return client

    def append(self, *raws: bytes, folder: str = "INBOX") -> None:
        with self.client() as client:
            for raw in raws:
                client.append(folder, raw)

    def seen_and_unseen(self, folder: str = "INBOX") -> tuple[list[int], list[int]]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return sorted(client.search(["SEEN"])), sorted(client.search(["UNSEEN"]))

    def kick(self) -> None:
        self.server.doveadm("kick", self.user)

    def set_uid_validity(self, value: int, folder: str = "INBOX") -> None:
        self.server.doveadm(
            "mailbox", "update", "-u", self.user, "--uid-validity", str(value), folder
        )


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    return ImapAccount(dovecot, dovecot.add_user())


def build_mail(
    n: int,
    *,
    sender: str = "Jane Roe <jane@acme.example>",
    to: str = "Support <support@ourco.com>",
    subject: str = "Question",
    body: str | None = None,
    message_id: str | None = "default",
    **headers: str,
) -> bytes:
    """A plain message; ``message_id=None`` leaves the header out."""
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = "Tue, 02 Nov 2021 09:26:50 +0100"
    if message_id == "default":
        message_id = f"<msg{n}@acme.example>"
    if message_id:
        m["Message-ID"] = message_id
    for key, value in headers.items():
        m[key.replace("_", "-")] = value
    m.set_content(body if body is not None else f"Hello, this is message number {n}.\n")
    return m.as_bytes()


@pytest.fixture
def make_mail():  # type: ignore[no-untyped-def]
    return build_mail
