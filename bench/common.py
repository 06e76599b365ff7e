"""Shared bench helpers: cached demo databases and latency summaries."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from crm.config import Settings
from crm.db import Database, normalise_url
from crm.demo import demo_exists, generate_demo

DATA_DIR = Path(__file__).resolve().parent / ".data"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_base_url() -> str | None:
    return os.environ.get("CRM_BENCH_DATABASE_URL") or os.environ.get("CRM_TEST_DATABASE_URL") or DEFAULT_PG


def demo_database(
    backend: str,
    customers: int,
    *,
    interactions: float = 10.0,
    seed: int = 42,
    anchor: date | None = None,
    pg_base: str | None = None,
    settings: Callable[[str], Settings] | None = None,
) -> Database:
    """A database holding the demo data set at this size, generated once and reused.

    ``anchor`` fixes the data set's "today" (default: the real today); ``pg_base`` names the
    PostgreSQL server (default: CRM_BENCH_DATABASE_URL, CRM_TEST_DATABASE_URL, then local).
    """
    tag = f"demo_{customers}_{int(interactions * 10)}_{seed}" + (f"_{anchor:%Y%m%d}" if anchor else "")
    if backend == "sqlite":
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        db = Database(f"sqlite:///{DATA_DIR / (tag + '.db')}")
    else:
        base = sa.engine.make_url(normalise_url(pg_base or postgres_base_url() or DEFAULT_PG))
        name = f"crmbot_bench_{tag}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).first():
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        db = Database(base.set(database=name).render_as_string(hide_password=False))
    db.upgrade()
    with db.session() as session:
        ready = demo_exists(session, seed)
    if not ready:
        started = time.perf_counter()
        print(f"  generating {customers:,} demo customers on {backend} (once; cached)...", flush=True)

        def progress(stage: str, done: int, total: int) -> None:
            print(f"    {stage}: {done:,}/{total:,} ({time.perf_counter() - started:.0f}s)", flush=True)

        made = settings(db.url) if settings else Settings(_env_file=None, database_url=db.url)  # type: ignore[call-arg]
        with db.transaction() as session:
            summary = generate_demo(session, settings=made, customers=customers, seed=seed, anchor=anchor,
                                    interactions_per_customer=interactions, progress=progress)
        with db.engine.connect() as conn:
            statement = "VACUUM ANALYZE" if backend == "postgresql" else "ANALYZE"
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(statement)
        print(f"  made {summary.customers:,} customers, {summary.interactions:,} interactions in "
              f"{time.perf_counter() - started:.0f}s", flush=True)
    return db


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1]}


def time_calls(fn: Callable[[int], object], n: int, warmup: int = 20) -> list[float]:
    for i in range(warmup):
        fn(i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples
