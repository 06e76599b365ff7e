"""Encryption at rest on a large demo data set: key rotation time and lookup latency.

    python bench/encryption.py                    # 100k customers / ~1M interactions, both backends
    python bench/encryption.py --customers 10000 --backend sqlite

For each backend, on a copy of the cached demo data set (stored plain), in the same run:
- lookups (by email, by fuzzy name, a customer card) with no keys set: the baseline;
- ``keys rotate`` with a first key: every sealed value of the store encrypted (time, values/s);
- the same lookups with the key set;
- ``keys rotate`` again after a new first key: every value re-encrypted under it;
- ``crmbot backup`` of the encrypted store and ``crmbot restore`` into an empty database.
The last lines say whether lookups keep p99 < 20 ms with encryption on, and how much the card,
which decrypts what it shows, costs over the baseline.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import DATA_DIR, demo_database, percentiles, time_calls  # noqa: E402
from bench.lookups import _typo  # noqa: E402
from bench.security import _empty  # noqa: E402
from crm import crypto  # noqa: E402
from crm.db import Database  # noqa: E402
from crm.models import ContactPoint, Customer  # noqa: E402
from crm.services import backups  # noqa: E402
from crm.services import customers as customer_svc  # noqa: E402
from crm.services import keys as keys_svc  # noqa: E402
from crm.services.actor import Actor  # noqa: E402

GOAL_MS = 20.0


def _copy(db: Database, backend: str) -> tuple[Database, object]:
    """A scratch copy of the cached data set (rotation rewrites it), and how to drop it."""
    if backend == "sqlite":
        source = Path(make_url(db.url).database or "")
        target = DATA_DIR / "encryption-scratch.db"
        for old in DATA_DIR.glob("encryption-scratch.db*"):
            old.unlink()
        src, dst = sqlite3.connect(source), sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        db.dispose()

        def drop_file() -> None:
            for old in DATA_DIR.glob("encryption-scratch.db*"):
                old.unlink()

        return Database(f"sqlite:///{target}"), drop_file
    url = make_url(db.url)
    name = f"{url.database}_enc"
    db.dispose()
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"')

    def drop_db() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return Database(url.set(database=name).render_as_string(hide_password=False)), drop_db


def _lookups(db: Database, samples: int, seed: int) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    with db.session() as s:
        emails = [r[0] for r in s.execute(sa.select(ContactPoint.value).where(ContactPoint.kind == "email").limit(20_000))]
        rows = s.execute(sa.select(Customer.id, Customer.name, Customer.company).limit(20_000)).all()
    picks = [rng.choice(emails) for _ in range(samples + 20)]
    names = [_typo(rng, f"{r[1]} {r[2]}") for r in (rng.choice(rows) for _ in range(samples + 20))]
    ids = [rng.choice(rows)[0] for _ in range(samples + 20)]

    def by_email(i: int) -> None:
        with db.lookup() as s:
            found = customer_svc.find_customers(s, picks[i])
            assert found and found[0].matched_on == "email"

    def by_name(i: int) -> None:
        with db.lookup() as s:
            assert customer_svc.find_customers(s, names[i], limit=5)

    def card(i: int) -> None:
        with db.lookup() as s:
            customer_svc.customer_card(s, ids[i])

    return {
        label: percentiles(time_calls(fn, samples))
        for label, fn in (("lookup by email", by_email), ("lookup by fuzzy name", by_name), ("customer card", card))
    }


def _rotate(db: Database) -> tuple[float, int]:
    admin = Actor.system("bench")
    started = time.perf_counter()
    done = sum(b.rewritten for b in keys_svc.rotate(db.transaction, actor_for=lambda s: admin))
    return time.perf_counter() - started, done


def run(backend: str, customers: int, samples: int) -> dict[str, object]:
    crypto.use_keys(None)
    cached = demo_database(backend, customers)
    db, drop = _copy(cached, backend)
    out: dict[str, object] = {}
    try:
        with db.session() as s:
            out["interactions"] = s.execute(sa.text("SELECT count(*) FROM interactions")).scalar_one()
        print(f"{backend}: {customers:,} customers, {out['interactions']:,} interactions", flush=True)
        out["plain"] = _lookups(db, samples, seed=1)
        key_a, key_b = crypto.generate_key(), crypto.generate_key()
        crypto.use_keys([key_a])
        out["encrypt_s"], out["encrypted_values"] = _rotate(db)
        print(f"  encrypted {out['encrypted_values']:,} values in {out['encrypt_s']:.1f}s", flush=True)
        out["sealed"] = _lookups(db, samples, seed=1)
        crypto.use_keys([key_b, key_a])
        out["rekey_s"], out["rekeyed_values"] = _rotate(db)
        print(f"  re-encrypted {out['rekeyed_values']:,} values in {out['rekey_s']:.1f}s", flush=True)
        with db.session() as s:
            left = [c for c in keys_svc.status(s) if c.plain or set(c.by_key) - {crypto.key_id(key_b)}]
        out["all_under_new_key"] = not left
        with tempfile.TemporaryDirectory(dir=DATA_DIR) as tmp:
            admin = Actor.system("bench")
            started = time.perf_counter()
            backups.make_backup(db, Path(tmp) / "b.tar", actor=admin)
            out["backup_s"] = time.perf_counter() - started
            out["backup_mb"] = (Path(tmp) / "b.tar").stat().st_size / 1e6
            target, drop_target = _empty(backend, Path(tmp))
            try:
                started = time.perf_counter()
                backups.restore_backup(target, Path(tmp) / "b.tar", actor=admin)
                out["restore_s"] = time.perf_counter() - started
                with target.session() as s:
                    sample = s.execute(sa.select(ContactPoint.value).limit(1)).scalar_one()
                out["restored_readable"] = "@" in sample or sample.startswith("+")
            finally:
                target.dispose()
                if drop_target:
                    drop_target()  # type: ignore[operator]
    finally:
        crypto.use_keys(None)
        db.dispose()
        drop()  # type: ignore[operator]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=1_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = {backend: run(backend, args.customers, args.samples) for backend in backends}
    print()
    print(f"{'backend':<11} {'operation':<22} {'plain p50':>10} {'p99':>8} {'encrypted p50':>14} {'p99':>8}")
    met = True
    for backend, r in results.items():
        for label in r["plain"]:  # type: ignore[union-attr]
            p, e = r["plain"][label], r["sealed"][label]  # type: ignore[index]
            print(f"{backend:<11} {label:<22} {p['p50']:>10.2f} {p['p99']:>8.2f} {e['p50']:>14.2f} {e['p99']:>8.2f}")
            if label.startswith("lookup"):
                met = met and e["p99"] < GOAL_MS
    print()
    for backend, r in results.items():
        enc_rate = r["encrypted_values"] / max(r["encrypt_s"], 1e-9)  # type: ignore[operator]
        print(
            f"{backend}: encrypting the store: {r['encrypted_values']:,} values in {r['encrypt_s']:.1f}s "
            f"({enc_rate:,.0f}/s); re-encrypting under a new key: {r['rekeyed_values']:,} values in "
            f"{r['rekey_s']:.1f}s; every value under the new key after: {'yes' if r['all_under_new_key'] else 'no'}"
        )
    for backend, r in results.items():
        print(
            f"{backend}: backup of the encrypted store {r['backup_s']:.1f}s ({r['backup_mb']:.0f} MB), "
            f"restore {r['restore_s']:.1f}s, round trip {r['backup_s'] + r['restore_s']:.1f}s; "  # type: ignore[operator]
            f"restored data readable with the key: {'yes' if r['restored_readable'] else 'no'}"
        )
    print(f"lookups keep p99 < {GOAL_MS:.0f} ms with encryption on ({', '.join(results)}): {'yes' if met else 'no'}")


if __name__ == "__main__":
    main()
