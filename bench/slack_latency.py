"""/crm show and /crm find latency over real HTTP, on a large demo data set.

    python bench/slack_latency.py        # 100k customers / ~1M interactions, both stores
    python bench/slack_latency.py --customers 2000 --requests 300 --backend sqlite

The bot runs as in production (HTTP server, Bolt app, listeners after ``ack()``). Requests are
signed like Slack's, from 20 simulated users at once: each sends its next command once the
answer to the last one has arrived at the response URL, as a person does, so 20 requests are
in flight until answered (not only until acknowledged). A local server stands in for Slack:
it answers auth.test/users.info and receives the ``respond()`` calls. Printed per store and
verb, in ms:

- *HTTP*: send to the HTTP answer (Slack's 3000 ms deadline applies to this);
- *respond*: send to the card or list arriving at the response URL (what the user waits for);
- *baseline*: the same service calls in-process, one at a time, with no Slack layer at all.

Goal: p99 < 150 ms for both HTTP and respond.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from slack_sdk.signature import SignatureVerifier  # noqa: E402
from sqlmodel import col  # noqa: E402

from bench.common import demo_database, percentiles  # noqa: E402
from bot.slack.app import create_app  # noqa: E402
from bot.slack.runtime import SlackHTTPComponent  # noqa: E402
from crm.config import Settings  # noqa: E402
from crm.db import Database  # noqa: E402
from crm.models import ContactPoint, Customer, User  # noqa: E402
from crm.services import customers as customer_svc  # noqa: E402
from crm.services import insights  # noqa: E402

GOAL_MS = 150.0
SECRET = "bench-signing-secret"
BENCH_USERS = [f"UBENCH{n:04d}" for n in range(100)]  # one Slack user per simulated user


class FakeSlackCloud:
    """Slack's side of the wire, on one asyncio loop in its own thread.

    It answers the Web API calls the bot makes, timestamps each response-URL post, and (in
    ``fire``) sends the signed requests. One loop and no thread per connection: the load
    generator must cost far less CPU than the bot it measures, on the same cores.
    """

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.bodies: dict[str, str] = {}
        self.waiting: dict[str, asyncio.Future[None]] = {}  # the users waiting for an answer
        self._handlers: set[asyncio.Task[None]] = set()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.server = self._run(asyncio.start_server(self._serve, "127.0.0.1", 0))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    @property
    def url(self) -> str:
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.monotonic()
                target, length = _request_line_and_length(head)
                raw = await reader.readexactly(length) if length else b""
                path = urlsplit(target).path
                body: dict[str, Any] = {"ok": True}
                if path.startswith("/respond/"):
                    key = path.rsplit("/", 1)[-1]
                    self.arrived[key] = now
                    self.bodies[key] = raw.decode()
                    if (waiter := self.waiting.pop(key, None)) and not waiter.done():
                        waiter.set_result(None)
                elif path.endswith("auth.test"):
                    body.update(user_id="UBOT", bot_id="BBOT", team_id="TBENCH", user="crmbot")
                elif path.endswith("users.info"):
                    # slack_sdk sends users.info as a GET: the user is in the query string.
                    query = urlsplit(target).query + "&" + raw.decode()
                    asked = dict(parse_qsl(query)).get("user", BENCH_USERS[0])
                    body["user"] = {
                        "id": asked,
                        "team_id": "TBENCH",
                        "tz": "UTC",
                        "profile": {
                            "real_name": f"Rep {asked}",
                            "email": f"{asked.lower()}@bench.invalid",
                        },
                    }
                data = json.dumps(body).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly, the connection is closed below
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        self._run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)


def _request_line_and_length(head: bytes) -> tuple[str, int]:
    """The request target (or, for a response, the status) and Content-Length of an HTTP head."""
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return lines[0].split(" ", 2)[1], length


def _workload(db: Any, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Half ``show`` (by email, by #id), half ``find`` (by domain, by a name fragment)."""
    with db.session() as s:
        emails = [
            r[0]
            for r in s.execute(
                sa.select(ContactPoint.value).where(ContactPoint.kind == "email").limit(20_000)
            )
        ]
        rows = s.execute(sa.select(Customer.id, Customer.name, Customer.domain).limit(20_000)).all()
    work: list[tuple[str, str]] = []
    for i in range(n):
        cid, name, domain = rng.choice(rows)
        kind = i % 4
        if kind == 0:
            work.append(("show", rng.choice(emails)))
        elif kind == 1:
            work.append(("show", f"#{cid}"))
        elif kind == 2:
            work.append(("find", domain or name))
        else:
            work.append(("find", name.split()[-1][:6]))
    return work


def _baseline(db: Any, work: list[tuple[str, str]]) -> dict[str, list[float]]:
    """The service calls alone, sequentially: what the Slack layer adds is the difference."""
    out: dict[str, list[float]] = {"show": [], "find": []}
    for verb, arg in work:
        started = time.monotonic()
        with db.session() as s:
            if verb == "find":
                customer_svc.find_customers(s, arg, limit=11)
            else:
                customer = customer_svc.resolve_customer(s, arg)
                customer_svc.customer_card(s, customer.id)  # type: ignore[arg-type]
                insights.customer_insight(s, customer.id)  # type: ignore[arg-type]
        out[verb].append((time.monotonic() - started) * 1000)
    return out


def _fire(
    base_url: str, cloud: FakeSlackCloud, work: list[tuple[str, str]], concurrency: int, tag: str
) -> dict[str, dict[str, list[float]]]:
    """Send ``work`` as signed /crm requests, ``concurrency`` users at once; wait for answers."""
    verifier = SignatureVerifier(SECRET)
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    results: dict[str, dict[str, list[float]]] = {
        "show": {"http": [], "respond": []},
        "find": {"http": [], "respond": []},
    }
    sent: dict[str, tuple[str, float, float]] = {}
    failures: list[str] = []
    queue = iter(range(len(work)))

    async def one(i: int, user: str) -> None:
        verb, arg = work[i]
        key = f"{tag}-{i}"
        form = urlencode(
            {
                "command": "/crm",
                "text": f"{verb} {arg}",
                "user_id": user,
                "team_id": "TBENCH",
                "channel_id": "CBENCH",
                "response_url": f"{cloud.url}/respond/{key}",
                "trigger_id": key,
            }
        ).encode()
        ts = str(int(time.time()))
        signature = verifier.generate_signature(timestamp=ts, body=form)
        request = (
            f"POST /slack/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {signature}\r\n"
            f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n"
        ).encode() + form
        answer = cloud.loop.create_future()
        cloud.waiting[key] = answer
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status, length = _request_line_and_length(head)
        await reader.readexactly(length)
        answered = time.monotonic()
        writer.close()
        if status != "200":
            failures.append(f"{verb} {arg}: HTTP {status}")
        sent[key] = (verb, started, answered)
        # A user waits for the card before typing the next command: a request is in flight
        # until its answer arrives, not only until Slack's HTTP call returns.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answer, timeout=30)

    async def worker(user: str) -> None:
        for i in queue:  # the simulated users share one iterator: each takes the next request
            await one(i, user)

    async def run_all() -> None:
        await asyncio.gather(*(worker(BENCH_USERS[n]) for n in range(concurrency)))

    cloud._run(run_all())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(k not in cloud.arrived for k in sent):
        time.sleep(0.01)
    for key, (verb, started, answered) in sent.items():
        results[verb]["http"].append((answered - started) * 1000)
        if key in cloud.arrived:
            results[verb]["respond"].append((cloud.arrived[key] - started) * 1000)
        else:
            failures.append(f"{key}: no respond()")
        body = cloud.bodies.get(key, "")
        if (
            ":warning:" in body
            and "No customer" not in body
            and "Did you mean" not in body
            and "Which one" not in body
        ):
            failures.append(f"{key}: error reply {body[:200]}")
    if failures:
        print(f"  {len(failures)} failure(s), e.g. {failures[:3]}", flush=True)
    return results


def _row(label: str, samples: list[float]) -> str:
    if len(samples) < 2:
        return f"  {label:<28} (too few samples)"
    p = percentiles(samples)
    verdict = "ok" if p["p99"] < GOAL_MS else "OVER GOAL"
    return (
        f"  {label:<28} n={len(samples):>5}  p50 {p['p50']:7.1f}  p95 {p['p95']:7.1f}  "
        f"p99 {p['p99']:7.1f}  max {p['max']:7.1f}  {verdict}"
    )


def _serve_bot(database_url: str, api_url: str, workers: int, conn: Any) -> None:
    """The bot in its own process, as ``crmbot run`` runs it; the load generator keeps its GIL."""
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        slack_bot_token="xoxb-bench",  # type: ignore[call-arg]
        slack_signing_secret=SECRET,
        slack_api_url=api_url,
        http_workers=workers,
    )
    db = Database(database_url)
    server = SlackHTTPComponent(
        create_app(settings, db, process_before_response=True),
        db,
        host="127.0.0.1",
        port=0,
        signing_secret=SECRET,
        workers=workers,
        settings=settings,
    )
    server.start()
    pids = [os.getpid()] + [process.pid for process, _ in server._workers]
    conn.send((server.url, pids))
    conn.recv()  # until told to stop
    server.stop()
    db.dispose()


def _cpu_seconds(pids: list[int]) -> dict[int, float] | None:
    """User + system CPU so far of each of ``pids`` still running (Linux /proc; else None)."""
    if not Path("/proc/self/stat").exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _postgres_server_cpu() -> dict[int, float] | None:
    """CPU of a PostgreSQL server on this machine, per process (None if there is none to see)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
    return _cpu_seconds(pids) if pids else None


class BotProcess:
    def __init__(self, database_url: str, api_url: str, workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        # Not a daemon: it starts the extra HTTP worker processes itself.
        self._process = ctx.Process(target=_serve_bot, args=(database_url, api_url, workers, child))
        self._process.start()
        if not self._conn.poll(120):
            raise RuntimeError("the bot process did not start")
        self.url, self.pids = self._conn.recv()

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the bot's processes so far (Linux /proc), or None elsewhere."""
        per_process = _cpu_seconds(self.pids)
        return (
            None
            if per_process is None or len(per_process) < len(self.pids)
            else sum(per_process.values())
        )

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()


def cpu_check_ms() -> float:
    """CPU time of a fixed pure-Python loop: shared machines run faster and slower over time,
    so each result is printed beside the speed the machine had around it."""
    started = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i
    return (time.process_time() - started) * 1000


def run(backend: str, customers: int, requests: int, concurrency: int, workers: int) -> bool:
    db = demo_database(backend, customers)
    with db.session() as s:
        n_customers = s.execute(sa.text("SELECT count(*) FROM customers")).scalar_one()
        n_inter = s.execute(sa.text("SELECT count(*) FROM interactions")).scalar_one()
    print(
        f"\n{backend}: {n_customers:,} customers, {n_inter:,} interactions; "
        f"{requests} requests, {concurrency} concurrent, {workers} bot HTTP process(es)",
        flush=True,
    )
    cloud = FakeSlackCloud()
    server = BotProcess(db.url, cloud.url + "/api/", workers)
    rng = random.Random(7)
    ok = True
    try:
        # Warm-up, not timed: each simulated user's first request creates their CRM user from
        # users.info (each bot process loaded its fuzzy-name index at start-up).
        warm = _workload(db, concurrency, rng)
        started = time.monotonic()
        _fire(server.url, cloud, warm[:1], 1, "warm0")
        _fire(server.url, cloud, warm, concurrency, "warm")
        print(
            f"  warm-up (first user): {time.monotonic() - started:.1f}s",
            flush=True,
        )
        work = _workload(db, requests, rng)
        _baseline(db, warm)  # this process's own name index, loaded before timing
        base = _baseline(db, work)
        speed_before = cpu_check_ms()
        cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
        own_before = time.process_time()
        pg_before = _postgres_server_cpu() if backend == "postgresql" else None
        measured = _fire(server.url, cloud, work, concurrency, "run")
        cpu_after, wall = server.cpu_seconds(), time.monotonic() - wall_before
        own = (time.process_time() - own_before) / len(work) * 1000
        pg_after = _postgres_server_cpu() if pg_before is not None else None
        speed_after = cpu_check_ms()
        for verb in ("show", "find"):
            print(_row(f"/crm {verb}  HTTP", measured[verb]["http"]))
            print(_row(f"/crm {verb}  respond", measured[verb]["respond"]))
            print(
                _row(f"/crm {verb}  baseline (no Slack)", base[verb])
                .replace("OVER GOAL", "")
                .rstrip()
            )
        print(
            f"  CPU check (a fixed loop; lower is a faster machine): {speed_before:.0f} ms "
            f"before, {speed_after:.0f} ms after"
        )
        every_http = measured["show"]["http"] + measured["find"]["http"]
        every_respond = measured["show"]["respond"] + measured["find"]["respond"]
        print(_row("all  HTTP", every_http))
        print(_row("all  respond", every_respond))
        pg_text = ""
        if pg_before is not None and pg_after is not None:
            pg_cpu = sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items())
            pg_text = f"PostgreSQL server CPU {pg_cpu / len(work) * 1000:.1f} ms per request; "
        if cpu_before is not None and cpu_after is not None:
            per_request = (cpu_after - cpu_before) / len(work) * 1000
            print(
                f"  throughput {len(work) / wall:.0f} req/s; "
                f"bot CPU {per_request:.1f} ms per request "
                f"(so about {1000 / per_request:.0f} req/s per free core); "
                f"Slack stand-in and load generator CPU {own:.1f} ms per request; "
                f"{pg_text}load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
            )
        ok = (
            len(every_respond) == len(work)
            and percentiles(every_http)["p99"] < GOAL_MS
            and percentiles(every_respond)["p99"] < GOAL_MS
        )
    finally:
        server.stop()
        cloud.stop()
        with db.transaction() as s:  # leave the cached data set as it was
            ids = [
                str(i)
                for i in s.execute(
                    sa.select(User.id).where(col(User.slack_user_id).in_(BENCH_USERS))
                ).scalars()
            ]
            s.execute(
                sa.text(
                    "DELETE FROM audit_events WHERE actor = 'slack' AND entity = 'user' "
                    "AND entity_id = :id"
                ),
                [{"id": i} for i in ids] or [{"id": ""}],
            )
            s.execute(sa.delete(User).where(col(User.slack_user_id).in_(BENCH_USERS)))
        db.dispose()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="bot HTTP processes (CRM_HTTP_WORKERS); default: one per core",
    )
    args = parser.parse_args()
    if not 1 <= args.concurrency <= len(BENCH_USERS):
        parser.error(f"--concurrency must be 1..{len(BENCH_USERS)}")
    logging.basicConfig(level=logging.WARNING)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"Slack /crm latency; goal p99 < {GOAL_MS:.0f} ms (Slack's deadline is 3000 ms)")
    results = {
        b: run(b, args.customers, args.requests, args.concurrency, args.workers) for b in backends
    }
    print(
        "\n"
        + ", ".join(f"{b}: {'goal met' if ok else 'goal NOT met'}" for b, ok in results.items())
    )


if __name__ == "__main__":
    main()
