"""Analytics at scale: a full refresh beside the bare steps it is built on, in the same run.

    python bench/analytics.py                     # 1M customers / 10M interactions, both stores,
                                                  # after the 100k and 300k points of the curve
    python bench/analytics.py --customers 100000 --points ''   # one size
    python bench/analytics.py --backend sqlite
    python bench/analytics.py --points 100000,300000   # the smaller points of the curve

The demo data set (crm.demo.generate_demo, fixed seed and anchor day) is generated once per
size and kept: SQLite under bench/.data/, PostgreSQL in a database named crmbot_bench_<tag> on
the server of --pg-url (default: CRM_BENCH_DATABASE_URL or CRM_TEST_DATABASE_URL). The build
time is printed when it happens.

Each measured step runs in a fresh process, so its peak memory (max RSS) is its own:

* refresh: crm.analytics.refresh.refresh, everything a scheduled refresh does (features,
  segments, churn training and scores with reasons, customer value, follow-up findings,
  next-product suggestions, topics), stored as a run; its phases and their shares are
  printed, the ones run beside the others on a second connection on a line of their own;
* bare aggregate (floor): one GROUP BY of the interactions per customer (count, last time,
  count per channel, purchase sum) on the driver's raw cursor, fetched into numpy;
* bare fit (floor): one fit of the churn model the refresh chose, on the refresh's own
  training matrix (built before the clock starts): the linear model on every labelled
  cutoff when it won, else the trees on the older cutoffs (their one fit in a refresh);
* bare store (floor): as many rows as the refresh stored in its four big tables, of the
  same shapes, by the same loader in one transaction, made before the clock starts and
  rolled back after. Bare aggregate + bare store is a floor for any refresh that reads the
  interactions once and stores its results; it is printed against the 2x budget.

Goal: at 1M customers, refresh <= 60 s and <= 4 GB on each store, within 2x of bare aggregate
+ bare fit, and growth from the smallest point linear or better (seconds per customer not
rising by more than 15%, the noise of a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # run as a script: make the repository importable
DATA = ROOT / ".data"
ANCHOR = date(2026, 1, 1)
CUTOFF = datetime.combine(ANCHOR, dtime(0), tzinfo=UTC)
SEED = 11
GOAL_SECONDS, GOAL_MB, GOAL_RATIO, GROWTH_SLACK = 60.0, 4096.0, 2.0, 1.15
# Phases the refresh runs beside the others (crm.analytics.refresh._beside): their time
# overlaps the main phases'; "waited_beside" is what the main work waited for them at its end.
BESIDE = ("next_products", "email_threads", "value", "topics", "store_beside")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(url: str):  # type: ignore[no-untyped-def]
    from crm.config import Settings

    return Settings(_env_file=None, database_url=url, model_dir=str(DATA / "models"))  # type: ignore[call-arg]


def ensure_data(backend: str, customers: int, per_customer: float, pg_base: str | None) -> str:
    from bench.common import demo_database

    db = demo_database(
        backend, customers, interactions=per_customer, seed=SEED, anchor=ANCHOR,
        pg_base=pg_base, settings=_settings,
    )  # fmt: skip
    db.dispose()
    return db.url


# ------------------------------------------------------------------ measured steps (each in its own process)


def step_refresh(url: str) -> dict[str, object]:
    from crm.analytics.refresh import refresh
    from crm.db import Database
    from crm.services.actor import Actor

    db = Database(url)
    started = time.perf_counter()
    result = refresh(
        db, settings=_settings(url), actor=Actor.system("bench"), cutoff=CUTOFF, kind="bench"
    )
    wall = time.perf_counter() - started
    return {
        "seconds": wall,
        "peak_mb": _peak_mb(),
        "customers": result.customers,
        "parts": result.seconds,
        "method": result.method,
        "model": result.meta["churn"].get("model", "logistic_regression"),
        "scored": result.meta["data"]["scored"],
        "findings": sum(result.findings.values()),
        "stored_findings": result.meta["findings"]["stored"],
        "stored_rows": (
            f"segments={result.customers},scores={result.meta['data']['scored']},"
            f"values={result.meta['value']['customers']},"
            f"suggestions={result.meta['next_products'].get('suggestions', 0)}"
        ),
    }


def _bare_aggregate_sql(dialect: str) -> str:
    """The one-pass floor: per customer, count, last time, count per channel, purchase sum."""
    from crm.analytics.columns import time_literal
    from crm.analytics.features import CHANNELS

    last, spend = "extract(epoch FROM max(occurred_at))::float8", "::float8"
    if dialect == "sqlite":
        last, spend = "julianday(max(occurred_at))", ""
    per_channel = ", ".join(f"count(*) FILTER (WHERE channel = '{c}')" for c in CHANNELS)
    return (
        f"SELECT customer_id, count(*), {last}, {per_channel}, "
        f"(sum(amount) FILTER (WHERE channel = 'purchase')){spend} FROM interactions "
        f"WHERE deleted_at IS NULL AND occurred_at < {time_literal(CUTOFF, dialect)} "
        f"GROUP BY customer_id"
    )


def step_bare_sql(url: str) -> dict[str, object]:
    """The one-pass GROUP BY on the raw driver cursor, every value fetched into numpy."""
    import numpy as np

    from crm.db import Database

    db = Database(url)
    sql = _bare_aggregate_sql(db.dialect)
    started = time.perf_counter()
    rows = 0
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        cur.execute(sql)
        while part := cur.fetchmany(100_000):
            rows += len(np.array(part, dtype=float))
        cur.close()
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb(), "rows": rows}


def step_bare_fit(url: str, model: str = "logistic_regression") -> dict[str, object]:
    """One fit of the chosen churn model on the refresh's own training matrix."""
    import numpy as np

    from crm.analytics import churn
    from crm.analytics.features import features_at, model_matrix, read_snapshot
    from crm.analytics.refresh import churn_config
    from crm.db import Database

    db = Database(url)
    config = churn_config(_settings(url))
    with db.session() as session:
        snapshot = read_snapshot(session, CUTOFF)
    sets = churn.labelled_sets(snapshot, CUTOFF, config)
    today = features_at(snapshot, CUTOFF)
    x_score = model_matrix(today[today["buyer"]])  # whom a refresh scores
    del snapshot, today
    # The refresh fits the trees on the older cutoffs and the linear model on all of them.
    older = sets[1:] if model != "logistic_regression" else sets
    x = np.vstack([model_matrix(s.features) for s in older])
    y = np.concatenate([s.churned for s in older])
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    with threadpool_limits(limits=_settings(url).analytics_threads):  # as the refresh fits
        fitted = churn.candidates(config.seed, len(y))[
            "logistic_regression" if model == "logistic_regression" else "hist_gradient_boosting"
        ].fit(x, y)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        fitted.predict_proba(x_score)
        predict = time.perf_counter() - started
    return {
        "seconds": seconds,
        "predict_seconds": predict,
        "scored": int(len(x_score)),
        "peak_mb": _peak_mb(),
        "rows": int(len(y)),
    }


def step_bare_store(url: str, rows: str) -> dict[str, object]:
    """The write floor: as many rows as the refresh stored in its four big tables (segments,
    churn scores, values, suggestions), of the same shapes, written by the same loader
    (``crm.services.bulk.write_rows``: COPY on PostgreSQL, executemany on SQLite) in one
    transaction with the same page cache, every value made before the clock starts; then
    rolled back, so the store is left as it was."""
    import numpy as np

    from crm.db import Database
    from crm.models import ChurnScore, CustomerSegment, CustomerValue, ProductSuggestion
    from crm.services import bulk

    counts = {k: int(v) for k, v in (part.split("=") for part in rows.split(","))}
    rng = np.random.default_rng(SEED)
    run = 2**31 - 1  # a run id no run has; the rows are rolled back anyway

    def ids(n: int) -> list[int]:
        return list(range(1, n + 1))

    segment_names = ["Champions", "Loyal", "Potential loyalist", "At risk", "Hibernating", "Lost"]

    def scores(n: int, top: int = 6) -> list[int]:
        return rng.integers(1, top, n).tolist()

    def fractions(n: int, scale: float = 1.0, digits: int = 6) -> list[float]:
        return np.round(rng.random(n) * scale, digits).tolist()

    n = counts["segments"]
    names = [segment_names[k] for k in rng.integers(0, 6, n)]
    tables = {
        CustomerSegment: (
            ("run_id", "customer_id", "recency_score", "frequency_score", "monetary_score",
             "rfm_segment", "cluster", "cluster_name"),
            list(zip([run] * n, ids(n), scores(n), scores(n), scores(n), names, scores(n),
                     ["Frequent big spenders"] * n, strict=True)),
        ),
    }  # fmt: skip
    n = counts["scores"]
    reasons = '["no purchase in 120 days (usually every 35)", "orders down 50% vs last quarter"]'
    tables[ChurnScore] = (
        ("run_id", "customer_id", "probability", "risk_level", "value_at_stake", "reasons",
         "method"),
        list(zip([run] * n, ids(n), fractions(n), ["medium"] * n, fractions(n, 1000, 2),
                 [reasons] * n, ["model"] * n, strict=True)),
    )  # fmt: skip
    n = counts["values"]
    tables[CustomerValue] = (
        ("run_id", "customer_id", "expected_purchases", "expected_spend", "p_alive",
         "horizon_months"),
        list(zip([run] * n, ids(n), fractions(n, 5, 4), fractions(n, 1000, 2), fractions(n),
                 [12] * n, strict=True)),
    )  # fmt: skip
    n = counts["suggestions"]
    because = "bought Add-on seats; 26% of such customers buy Single sign-on, 2.5x the usual rate"
    tables[ProductSuggestion] = (
        ("run_id", "customer_id", "product_id", "rank", "score", "reason"),
        list(zip([run] * n, [1 + k // 3 for k in range(n)], scores(n, 50),
                 [1 + k % 3 for k in range(n)], fractions(n), [because] * n, strict=True)),
    )  # fmt: skip
    db = Database(url)
    with db.engine.connect() as conn:
        from sqlmodel import Session

        session = Session(bind=conn)
        trans = conn.begin()
        with bulk.page_cache(session):
            started = time.perf_counter()
            for model, (names, values) in tables.items():
                bulk.write_rows(session, model.__table__, names, values)  # type: ignore[attr-defined]
            seconds = time.perf_counter() - started
        trans.rollback()
    return {"seconds": seconds, "peak_mb": _peak_mb(), "rows": sum(counts.values())}


STEPS = {
    "refresh": step_refresh,
    "bare_sql": step_bare_sql,
    "bare_fit": step_bare_fit,
    "bare_store": step_bare_store,
}


def run_step(step: str, url: str, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--step", step, "--url", url, *extra],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT.parent)},
    )
    if out.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(backend: str, customers: int, args: argparse.Namespace) -> dict[str, object]:
    url = ensure_data(backend, customers, args.interactions_per_customer, args.pg_url)
    print(f"{backend} {customers:,}: measuring (each step in a fresh process)...", flush=True)
    full = run_step("refresh", url)
    sql = run_step("bare_sql", url)
    fit = run_step("bare_fit", url, "--model", str(full["model"]))
    store = run_step("bare_store", url, "--rows", str(full["stored_rows"]))
    seconds = float(full["seconds"])  # type: ignore[arg-type]
    parts: dict[str, float] = full["parts"]  # type: ignore[assignment]
    def shares(names: list[str]) -> str:
        return ", ".join(f"{k} {parts[k]:.1f}s ({100 * parts[k] / seconds:.0f}%)" for k in names)

    print(f"  phases: {shares([k for k in parts if k not in BESIDE])}", flush=True)
    print(
        f"  beside them, on a second connection: {shares([k for k in parts if k in BESIDE])}",
        flush=True,
    )
    print(
        f"  model {full['model']}; scored {full['scored']:,} buyers; {full['findings']:,} "
        f"findings flagged, {full['stored_findings']:,} stored (each owner's most urgent); "
        f"bare fit on {fit['rows']:,} training rows",
        flush=True,
    )
    return {
        "backend": backend,
        "customers": customers,
        "refresh": full,
        "sql": sql,
        "fit": fit,
        "store": store,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--points",
        default="100000,300000",
        help="smaller sizes measured first for the growth curve ('' for none)",
    )
    parser.add_argument("--interactions-per-customer", type=float, default=10.0)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CRM_BENCH_DATABASE_URL") or os.environ.get("CRM_TEST_DATABASE_URL"),
    )
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="logistic_regression", help=argparse.SUPPRESS)
    parser.add_argument("--rows", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        if args.step == "bare_fit":
            result = step_bare_fit(args.url, args.model)
        elif args.step == "bare_store":
            result = step_bare_store(args.url, args.rows)
        else:
            result = STEPS[args.step](args.url)
        print(json.dumps(result))
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    points = sorted({int(p) for p in args.points.split(",") if p.strip()} - {args.customers})
    sizes = [p for p in points if p < args.customers] + [args.customers]
    runs = [measure(b, n, args) for b in backends for n in sizes]
    print()
    print(
        f"{'backend':<10} {'customers':>9} {'refresh s':>9} {'s/100k':>7} {'peak MB':>8} "
        f"{'bare agg':>8} {'bare fit':>8} {'ratio':>6} {'bare store':>10}"
    )
    verdicts = []
    for backend in backends:
        mine = [r for r in runs if r["backend"] == backend]
        first = mine[0]
        for r in mine:
            full, sql, fit = r["refresh"], r["sql"], r["fit"]
            seconds, peak = float(full["seconds"]), float(full["peak_mb"])  # type: ignore[arg-type]
            bare = float(sql["seconds"]) + float(fit["seconds"])  # type: ignore[arg-type]
            n = int(r["customers"])  # type: ignore[arg-type]
            per = seconds / n * 100_000
            print(
                f"{backend:<10} {n:>9,} {seconds:>9.1f} {per:>7.1f} {peak:>8.0f} "
                f"{float(sql['seconds']):>8.1f} {float(fit['seconds']):>8.1f} "  # type: ignore[arg-type]
                f"{seconds / bare:>5.2f}x {float(r['store']['seconds']):>10.1f}"  # type: ignore[index]
            )
        top = mine[-1]
        seconds = float(top["refresh"]["seconds"])  # type: ignore[index]
        peak = float(top["refresh"]["peak_mb"])  # type: ignore[index]
        bare = float(top["sql"]["seconds"]) + float(top["fit"]["seconds"])  # type: ignore[index]
        growth = (seconds / int(top["customers"])) / (  # type: ignore[arg-type]
            float(first["refresh"]["seconds"]) / int(first["customers"])  # type: ignore[index, arg-type]
        )
        checks = {
            f"<= {GOAL_SECONDS:.0f} s": seconds <= GOAL_SECONDS,
            f"<= {GOAL_MB / 1024:.0f} GB": peak <= GOAL_MB,
            f"<= {GOAL_RATIO:.0f}x bare": seconds <= GOAL_RATIO * bare,
            "growth linear or better": len(mine) < 2 or growth <= GROWTH_SLACK,
        }
        missed = [k for k, ok in checks.items() if not ok]
        verdicts.append(not missed)
        print(
            f"  {backend} at {int(top['customers']):,}: "  # type: ignore[arg-type]
            + ", ".join(f"{k}: {'yes' if ok else 'no'}" for k, ok in checks.items())
            + (f" (seconds per customer x{growth:.2f} from the first point)" if len(mine) > 1 else "")
        )
        # The floor of any refresh that reads the interactions once, fits and applies the
        # model once, and stores what it found: the bare steps of each, summed.
        sql_s, fit_s = float(top["sql"]["seconds"]), float(top["fit"]["seconds"])  # type: ignore[index]
        predict_s = float(top["fit"]["predict_seconds"])  # type: ignore[index]
        store_s = float(top["store"]["seconds"])  # type: ignore[index]
        floor = sql_s + fit_s + predict_s + store_s
        budget = GOAL_RATIO * bare
        print(
            f"  {backend} floor: bare aggregate {sql_s:.1f} + fit {fit_s:.1f} + one prediction "
            f"of {int(top['fit']['scored']):,} scored {predict_s:.1f} + store of the run's "  # type: ignore[index]
            f"{int(top['store']['rows']):,} rows {store_s:.1f} = {floor:.1f} s against the 2x "  # type: ignore[index]
            f"budget of {budget:.1f} s ({100 * floor / budget:.0f}%, before any segment, value, "
            f"reason, rule, suggestion or topic); 2x within reach: "
            f"{'yes' if floor < budget else 'no'}"
        )
    print(f"goal met: {'yes' if all(verdicts) else 'no'}")


if __name__ == "__main__":
    main()
