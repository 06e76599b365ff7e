"""Customer lookup and interaction recording latency on a large demo data set.

    python bench/lookups.py                      # 100k customers / ~1M interactions, SQLite and PostgreSQL
    python bench/lookups.py --customers 10000 --backend sqlite
    python bench/lookups.py --encrypted          # on an encrypted copy (CRM_ENCRYPTION_KEYS set)

Prints p50/p95/p99 in ms for: lookup by email, lookup by fuzzy name (with a typo), and
recording an interaction. Goal: p99 < 20 ms for lookups.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from bench.common import demo_database, percentiles, time_calls  # noqa: E402
from crm.models import Channel, ContactPoint, Customer, Direction, InteractionCreate  # noqa: E402
from crm.services import customers as customer_svc  # noqa: E402
from crm.services import interactions as interaction_svc  # noqa: E402
from crm.services.actor import Actor  # noqa: E402

GOAL_MS = 20.0


def _typo(rng: random.Random, name: str) -> str:
    chars = list(name)
    i = rng.randrange(1, len(chars) - 1)
    chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def run(
    backend: str, customers: int, samples: int, encrypted: bool = False
) -> list[tuple[str, dict[str, float]]]:
    db = demo_database(backend, customers)
    drop = None
    if encrypted:  # a scratch copy, every value encrypted under a fresh key
        from bench.encryption import _copy, _rotate
        from crm import crypto

        db, drop = _copy(db, backend)
        crypto.use_keys([crypto.generate_key()])
        seconds, values = _rotate(db)
        print(f"  {backend}: encrypted {values:,} values of a copy in {seconds:.1f}s", flush=True)
    rng = random.Random(1)
    with db.session() as s:
        n_inter = s.execute(sa.text("SELECT count(*) FROM interactions")).scalar_one()
        emails = [r[0] for r in s.execute(sa.select(ContactPoint.value).where(ContactPoint.kind == "email").limit(20_000))]
        rows = s.execute(sa.select(Customer.id, Customer.name, Customer.company).limit(20_000)).all()
    print(f"{backend}: {customers:,} customers, {n_inter:,} interactions", flush=True)
    picks = [rng.choice(emails) for _ in range(samples + 20)]
    names = [_typo(rng, f"{r[1]} {r[2]}") for r in (rng.choice(rows) for _ in range(samples + 20))]
    ids = [rng.choice(rows)[0] for _ in range(samples + 20)]
    actor = Actor.system("bench")
    run_tag = rng.getrandbits(48)

    def by_email(i: int) -> None:
        with db.session() as s:
            found = customer_svc.find_customers(s, picks[i])
            assert found and found[0].matched_on == "email"

    def by_name(i: int) -> None:
        with db.session() as s:
            assert customer_svc.find_customers(s, names[i], limit=5)

    def record(i: int) -> None:
        with db.transaction() as s:
            interaction_svc.record_interaction(s, actor=actor, interaction_in=InteractionCreate(
                customer_id=ids[i], channel=Channel.email, direction=Direction.inbound, subject="bench",
                body="Hello there", source="bench", external_id=f"{run_tag}-{i}"))

    results = []
    for label, fn in (("lookup by email", by_email), ("lookup by fuzzy name", by_name), ("record interaction", record)):
        results.append((label, percentiles(time_calls(fn, samples))))
    with db.transaction() as s:  # leave the cached data set as it was
        s.execute(sa.text("DELETE FROM audit_events WHERE actor = 'bench'"))
        s.execute(sa.text("DELETE FROM interactions WHERE source = 'bench'"))
    db.dispose()
    if drop is not None:
        drop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=1_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--encrypted", action="store_true", help="on an encrypted copy of the data set")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    table = []
    for backend in backends:
        for label, stats in run(backend, args.customers, args.samples, args.encrypted):
            table.append((backend, label, stats))
    print()
    print(f"encryption at rest: {'on' if args.encrypted else 'off'}")
    print(f"{'backend':<11} {'operation':<22} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  goal")
    for backend, label, stats in table:
        goal = f"p99 < {GOAL_MS:.0f} ms: {'met' if stats['p99'] < GOAL_MS else 'NOT met'}" if label.startswith("lookup") else "-"
        print(f"{backend:<11} {label:<22} {stats['p50']:>8.2f} {stats['p95']:>8.2f} {stats['p99']:>8.2f}  {goal}")


if __name__ == "__main__":
    main()
