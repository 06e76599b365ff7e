"""End-to-end mail ingest rate against mbsync's raw download rate, from the same Dovecot.

    python bench/ingest.py                 # 5,000 messages of ~20 KB
    python bench/ingest.py -n 500          # quicker
    python bench/ingest.py --database-url postgresql://postgres@127.0.0.1/postgres

Starts a throwaway Dovecot on 127.0.0.1 (needs ``dovecot-imapd``; ``isync`` for mbsync),
fills one mailbox with N realistic messages (multipart text + HTML, Received chains, replies
with quoted history and signatures, forwards, attachments, from a few hundred companies),
then in the same run times:

- mbsync (its default settings) pulling the folder into an empty Maildir: the raw rate;
- ``crmbot mail poll --once`` equivalent: fetch, parse, match, store, mark \\Seen;
- two floors, each one part of crmbot's work done alone: the standard library's MIME parse
  (fastest policy, text parts decoded; crmbot's parser is built on it) in as many processes,
  and imapclient's fetch of the same messages (crmbot's IMAP library) in one process.

Prints the four rates, ours / mbsync's, and the verdict on the goal: crmbot end-to-end at
least half the rate of the standard library's MIME parse alone (ours / that floor >= 0.50).

The machine may be shared: each timing is noisy. So crmbot and the parse floor are timed
``--rounds`` times, in alternating order, each crmbot round into a fresh database; every
round prints its own ratio, and the verdict is on the median round.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import pwd
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from bot.mail.poller import MailboxPoller  # noqa: E402
from crm.config import Settings  # noqa: E402
from crm.db import Database, normalise_url  # noqa: E402

USER, PASSWORD = "bench", "secret"
WORDS = [
    "invoice",
    "quote",
    "renewal",
    "contract",
    "order",
    "delivery",
    "shipment",
    "account",
    "price",
    "discount",
    "team",
    "plan",
    "licence",
    "seats",
    "support",
    "ticket",
    "issue",
    "update",
    "meeting",
    "call",
    "schedule",
    "thanks",
    "regards",
    "please",
    "could",
    "would",
    "should",
    "we",
    "you",
    "they",
    "our",
    "your",
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "for",
    "on",
    "with",
    "about",
    "this",
    "that",
    "next",
    "week",
    "monday",
    "friday",
    "month",
    "quarter",
    "budget",
    "approval",
    "legal",
    "review",
    "signed",
    "draft",
    "version",
]
FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Eva",
    "Frank",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kim",
    "Lena",
    "Marco",
    "Nina",
    "Omar",
    "Paula",
]
LAST = [
    "Meyer",
    "Smith",
    "Garcia",
    "Rossi",
    "Dubois",
    "Novak",
    "Jensen",
    "Silva",
    "Kowalski",
    "Nguyen",
    "Tanaka",
    "Brown",
]


# --------------------------------------------------------------------------- corpus


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(2, 5)))


def make_message(i: int, rng: random.Random, target: int = 20_000) -> bytes:
    company = f"company{rng.randrange(300)}"
    first, last = rng.choice(FIRST), rng.choice(LAST)
    sender = f"{first} {last} <{first.lower()}.{last.lower()}@{company}.example>"
    kind = rng.random()
    m = EmailMessage()
    for hop in range(rng.randint(4, 8)):
        m["Received"] = (
            f"from mx{hop}.{company}.example (mx{hop}.{company}.example [192.0.2.{hop}]) by "
            f"mx.ourco.com with ESMTPS id {rng.getrandbits(64):x}; "
            f"Tue, 2 Nov 2021 09:{hop:02d}:00 +0000"
        )
    m["DKIM-Signature"] = "v=1; a=rsa-sha256; d=" + company + ".example; b=" + "A" * 340
    subject = rng.choice(["Invoice", "Renewal", "Order", "Question about the plan", "Meeting"])
    body_parts = [_paragraph(rng) for _ in range(rng.randint(2, 4))]
    if kind < 0.15:
        # Forwarded by a staff member.
        m["From"] = f"Agent {rng.choice(FIRST)} <agent{rng.randrange(5)}@ourco.com>"
        m["Subject"] = f"Fwd: {subject} {i}"
        text = (
            "Please log this one.\n\n---------- Forwarded message ---------\n"
            f"From: {sender}\nDate: Mon, 1 Nov 2021 at 10:00\nSubject: {subject} {i}\n"
            "To: Support <support@ourco.com>\n\n" + "\n\n".join(body_parts)
        )
    else:
        m["From"] = sender
        m["Subject"] = (f"Re: {subject} {i}") if kind < 0.6 else f"{subject} {i}"
        text = (
            "\n\n".join(body_parts) + f"\n\nBest regards,\n{first} {last}\n{company.title()} GmbH\n"
        )
        if kind < 0.6:
            m["In-Reply-To"] = f"<prev{i}@ourco.com>"
            m["References"] = f"<root{i}@{company}.example> <prev{i}@ourco.com>"
            quoted = "\n\n".join(_paragraph(rng) for _ in range(rng.randint(2, 4)))
            text += (
                "\nOn Mon, 1 Nov 2021 at 10:00, Support <support@ourco.com> wrote:\n"
                + "\n".join("> " + line for line in quoted.splitlines())
            )
    m["To"] = "Support <support@ourco.com>"
    m["Date"] = "Tue, 02 Nov 2021 09:26:50 +0100"
    m["Message-ID"] = f"<bench{i}.{rng.getrandbits(32):x}@{company}.example>"
    m.set_content(text)
    html_body = "".join(
        f'<p style="font-family:Arial,sans-serif;font-size:14px;color:#222">{html.escape(p)}</p>'
        for p in text.split("\n\n")
    )
    m.add_alternative(f"<html><body>{html_body}</body></html>", subtype="html")
    raw = m.as_bytes()
    if len(raw) < target:
        # The rest of the ~20 KB is an attachment, as is typical (a PDF, a logo).
        m.add_attachment(
            rng.randbytes(max(0, (target - len(raw)) * 3 // 4 - 200)),
            maintype="application",
            subtype="pdf",
            filename=f"document-{i}.pdf",
        )
        raw = m.as_bytes()
    return raw.replace(b"\n", b"\r\n")


# --------------------------------------------------------------------------- dovecot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="crmbot-bench-dovecot-"))
        self.root.chmod(0o755)
        self.port = _free_port()
        self.run_as = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        entry = pwd.getpwnam(self.run_as)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        group = subprocess.run(
            ["id", "-gn", self.run_as], capture_output=True, text=True, check=True
        ).stdout.strip()
        home = self.root / "mail" / USER
        self.maildir = home / "Maildir"
        for sub in ("run", "state"):
            (self.root / sub).mkdir()
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir(parents=True)
        (self.root / "passwd").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{home}::\n"
        )
        (self.root / "dovecot.conf").write_text(
            f"""base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {self.run_as}
default_internal_group = {group}
default_login_user = {self.run_as}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
        )

    def fill(self, raws: list[bytes]) -> None:
        """Deliver straight into the Maildir (as an MDA would), then let Dovecot index it."""
        base = int(time.time())
        for i, raw in enumerate(raws):
            (self.maildir / "new" / f"{base}.M{i}P{os.getpid()}.bench").write_bytes(raw)

    def start(self) -> None:
        if os.geteuid() == 0:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, self.uid, self.gid)
        subprocess.run(["dovecot", "-c", str(self.root / "dovecot.conf")], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("Dovecot did not start")

    def warm(self) -> int:
        """Index the folder and read every message once, so neither contender pays for that."""
        return self.fetch_all(["RFC822.SIZE", "BODY.PEEK[]"], 500)

    def fetch_all(self, items: list[str], batch: int) -> int:
        """Fetch ``items`` of every message in batches, read-only; the number of messages."""
        with IMAPClient("127.0.0.1", port=self.port, ssl=False) as client:
            client.login(USER, PASSWORD)
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["ALL"])
            for start in range(0, len(uids), batch):
                client.fetch(uids[start : start + batch], items)
            return len(uids)

    def unseen(self) -> int:
        with IMAPClient("127.0.0.1", port=self.port, ssl=False) as client:
            client.login(USER, PASSWORD)
            client.select_folder("INBOX", readonly=True)
            return len(client.search(["UNSEEN"]))

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text().strip()), 15)
        time.sleep(0.3)
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- contenders


def run_mbsync(server: Dovecot, work: Path) -> float:
    target = work / "mbsync-maildir"
    target.mkdir()
    conf = work / "mbsyncrc"
    conf.write_text(
        f"""IMAPAccount bench
Host 127.0.0.1
Port {server.port}
User {USER}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore bench-remote
Account bench

MaildirStore bench-local
Path {target}/
Inbox {target}/INBOX

Channel bench
Far :bench-remote:
Near :bench-local:
Patterns INBOX
Sync Pull
Create Near
SyncState *
"""
    )
    conf.chmod(0o600)
    started = time.perf_counter()
    subprocess.run(["mbsync", "-q", "-c", str(conf), "bench"], check=True)
    elapsed = time.perf_counter() - started
    got = sum(1 for d in ("cur", "new") for _ in (target / "INBOX" / d).iterdir())
    return elapsed if got else float("nan")


def _database(url: str | None, work: Path, round_no: int = 0) -> tuple[Database, str]:
    if not url:
        return Database(f"sqlite:///{work / f'crm{round_no}.db'}"), "SQLite"
    base = sa.engine.make_url(normalise_url(url))
    name = f"crmbot_bench_ingest_{os.getpid()}_{round_no}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return Database(base.set(database=name).render_as_string(hide_password=False)), "PostgreSQL"


def _drop(db: Database, url: str | None) -> None:
    db.dispose()
    if url:
        base = sa.engine.make_url(normalise_url(url))
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db.engine.url.database}" WITH (FORCE)')
        admin.dispose()


def _cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_crmbot(
    server: Dovecot, db: Database, batch: int, workers: int
) -> tuple[float, dict, float]:
    settings = Settings(
        _env_file=None,
        database_url=db.url,
        internal_domains=["ourco.com"],
        imap_host="127.0.0.1",
        imap_port=server.port,
        imap_security="plaintext",
        imap_user=USER,
        imap_password=PASSWORD,  # type: ignore[arg-type]
        imap_mailbox_name="bench",
        imap_batch_size=batch,
        mail_parse_workers=workers,
    )  # type: ignore[call-arg]
    db.upgrade()
    poller = MailboxPoller(settings, db)
    cpu = _cpu_seconds()
    started = time.perf_counter()
    report = poller.poll_once()  # ends its parser processes: their CPU time is counted
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    poller.processor.close()
    return elapsed, report.as_dict(), cpu


def run_fetch_floor(server: Dovecot, batch: int) -> float:
    """Seconds for imapclient (the IMAP library crmbot uses) to fetch every message in the
    same batches, in one process, doing nothing with them."""
    started = time.perf_counter()
    server.fetch_all(["BODY.PEEK[]"], batch)
    return time.perf_counter() - started


def _stdlib_parse(raws: list[bytes]) -> int:
    """The least a reader built on the standard library's MIME parser does, with its fastest
    policy (compat32, as crmbot's parser uses): build the MIME tree and decode every text
    part's bytes. No header parsing, no charset decoding, no quote, signature or forward
    logic, no HTML to text, no database."""
    from email import policy
    from email.parser import BytesParser

    parser = BytesParser(policy=policy.compat32)
    for raw in raws:
        for part in parser.parsebytes(raw).walk():
            if part.get_content_maintype() == "text":
                part.get_payload(decode=True)
    return len(raws)


def run_stdlib_floor(raws: list[bytes], batch: int, workers: int) -> tuple[float, float]:
    """Seconds for _stdlib_parse over every message, in as many processes as crmbot parses
    with, and the CPU seconds those processes used (they end with the pool, so it counts)."""
    from concurrent.futures import ProcessPoolExecutor

    processes = workers or os.cpu_count() or 1
    cpu = _cpu_seconds()
    with ProcessPoolExecutor(max_workers=processes) as pool:
        list(pool.map(_stdlib_parse, [raws[:1]] * processes))  # start the processes first
        started = time.perf_counter()
        done = sum(
            pool.map(_stdlib_parse, [raws[i : i + batch] for i in range(0, len(raws), batch)])
        )
        elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    assert done == len(raws)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=5_000)
    parser.add_argument("--size", type=int, default=20_000, help="bytes per message (about)")
    parser.add_argument("--batch", type=int, default=200, help="messages per fetch/commit")
    parser.add_argument("--workers", type=int, default=0, help="parser processes (0: per CPU)")
    parser.add_argument("--rounds", type=int, default=3, help="timings of crmbot and the floor")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    for tool in ("dovecot", "mbsync"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install dovecot-imapd isync)")

    rng = random.Random(42)
    raws = [make_message(i, rng, args.size) for i in range(args.messages)]
    avg = sum(len(r) for r in raws) / len(raws)
    print(f"{len(raws):,} messages, {avg / 1000:.1f} KB on average, {os.cpu_count()} CPUs")
    server = Dovecot()
    work = Path(tempfile.mkdtemp(prefix="crmbot-bench-ingest-"))
    try:
        server.fill(raws)
        server.start()
        print(f"Dovecot on 127.0.0.1:{server.port}: {server.warm():,} messages indexed")

        mbsync_s = run_mbsync(server, work)
        mbsync_rate = len(raws) / mbsync_s
        print(f"mbsync (raw download into a Maildir):  {mbsync_s:7.2f} s  {mbsync_rate:8.0f} msg/s")

        ratios: list[float] = []
        cpu_ratios: list[float] = []
        for round_no in range(1, args.rounds + 1):
            # Alternate who goes first, so that a change in the machine's load is shared.
            first, second = ("crmbot", "floor") if round_no % 2 else ("floor", "crmbot")
            rates: dict[str, float] = {}
            for contender in (first, second):
                if contender == "floor":
                    floor_s, floor_cpu = run_stdlib_floor(raws, args.batch, args.workers)
                    rates["floor"] = len(raws) / floor_s
                    continue
                db, backend = _database(args.database_url, work, round_no)
                try:
                    ours_s, report, ours_cpu = run_crmbot(server, db, args.batch, args.workers)
                finally:
                    _drop(db, args.database_url)
                rates["crmbot"] = report["fetched"] / ours_s
            ratio = rates["crmbot"] / rates["floor"]
            ratios.append(ratio)
            cpu_ratios.append(floor_cpu / ours_cpu)
            print(f"round {round_no}:")
            print(
                f"  crmbot end-to-end on {backend} (fetch, parse, match, store, \\Seen): "
                f"{ours_s:7.2f} s  {rates['crmbot']:8.0f} msg/s  "
                f"({rates['crmbot'] / mbsync_rate:.2f} of mbsync)"
            )
            print(
                f"    stored {report['stored']:,}, duplicate {report['duplicate']}, "
                f"quarantined {report['quarantined']}, ignored {report['ignored']}; "
                f"left unseen on the server: {server.unseen()}"
            )
            print(
                f"  floor: the standard library's MIME parse alone (compat32, text parts decoded; "
                f"no server, no database), same processes: {floor_s:7.2f} s  "
                f"{rates['floor']:8.0f} msg/s"
            )
            print(
                f"  CPU per message (all its processes; the IMAP server not counted): crmbot "
                f"{ours_cpu / len(raws) * 1000:.2f} ms, floor {floor_cpu / len(raws) * 1000:.2f} ms"
            )
            print(f"  crmbot / stdlib parse floor: {ratio:.2f}")
        fetch_s = run_fetch_floor(server, args.batch)
        fetch_rate = len(raws) / fetch_s
        print(
            f"floor: imapclient's fetch alone (BODY.PEEK[], nothing done with it), one process: "
            f"{fetch_s:7.2f} s  {fetch_rate:8.0f} msg/s  ({fetch_rate / mbsync_rate:.2f} of mbsync)"
        )
        print(
            "floor CPU / crmbot CPU per message (what the ratio tends to on an otherwise idle "
            f"machine whose CPUs both keep busy), median: {statistics.median(cpu_ratios):.2f}"
        )
        median = statistics.median(ratios)
        verdict = "yes" if median >= 0.5 else "no"
        print(
            f"crmbot / stdlib parse floor, median of {len(ratios)} rounds: {median:.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
        print(f"goal met: {verdict} (crmbot end-to-end >= 0.50 of the stdlib parse floor)")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
