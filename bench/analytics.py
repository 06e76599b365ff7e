"""Analytics at scale: a full refresh against the bare SQL aggregate and the bare scikit-learn fits.

    python bench/analytics.py                       # 1M customers / 10M interactions, SQLite and PostgreSQL
    python bench/analytics.py --customers 100000    # smaller
    python bench/analytics.py --backend sqlite
    python bench/analytics.py --statements          # each feature statement's time, to find a slow one

The demo data set (crm.demo.generate_demo, fixed seed and anchor day) is generated once per
size and kept: SQLite under bench/.data/, PostgreSQL in a database named crmbot_bench_<N> on
the server of --pg-url (default: CRM_BENCH_DATABASE_URL or CRM_TEST_DATABASE_URL).

Each measured step runs in a fresh process, so its peak memory (max RSS) is its own:

* refresh: crm.analytics.refresh.refresh, everything a scheduled refresh does, stored as a run;
* bare SQL: the same aggregate statements for the same cutoffs, run on the driver's cursor
  and fetched into numpy, nothing else;
* bare fit: one fit of the churn model the refresh chose on the same labelled matrix, its
  calibration sigmoid, and one k-means fit on the same clustering matrix.

Goal: refresh <= 60 s and <= 4 GB, and within 2x of bare SQL + bare fit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # run as a script: make the repository importable
DATA = ROOT / ".data"
ANCHOR = date(2026, 1, 1)
CUTOFF = datetime.combine(ANCHOR, dtime(0), tzinfo=UTC)
SEED = 11


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(url: str):  # type: ignore[no-untyped-def]
    from crm.config import Settings

    return Settings(_env_file=None, database_url=url, model_dir=str(DATA / "models"))  # type: ignore[call-arg]


def ensure_data(backend: str, customers: int, per_customer: float, pg_base: str | None) -> str:
    from bench.common import demo_database

    db = demo_database(backend, customers, interactions=per_customer, seed=SEED, anchor=ANCHOR,
                       pg_base=pg_base, settings=_settings)
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
        "findings": sum(result.findings.values()),
    }


def _statements(dialect: str, cutoffs: list[datetime], every: int):  # type: ignore[no-untyped-def]
    """The refresh's statements: full ones at the scoring cutoff, sampled ones (every n-th
    customer, as the churn training does) at the labelled cutoffs, plus the label queries."""
    from crm.analytics import features as f

    for n, c in enumerate(cutoffs):
        yield from f.feature_statements(dialect, c, 1 if n == 0 else every).values()
    for c in cutoffs[1:]:
        i = f.Interaction.__table__.c
        yield (
            f.sa.select(i.customer_id)
            .where(
                i.deleted_at.is_(None),
                i.occurred_at >= f._ts(c),
                i.occurred_at < f._ts(c + timedelta(days=90)),
            )
            .group_by(i.customer_id)
        )


def _cutoffs(url: str) -> list[datetime]:
    from crm.analytics.refresh import churn_config

    config = churn_config(_settings(url))
    step, horizon = timedelta(days=config.cutoff_step_days), timedelta(days=config.horizon_days)
    return [CUTOFF] + [CUTOFF - horizon - step * n for n in range(config.training_cutoffs)]


def step_bare_sql(url: str) -> dict[str, object]:
    """The same aggregate statements, compiled once, run on the raw driver cursor into numpy arrays."""
    import numpy as np

    from crm.db import Database

    db = Database(url)
    dialect = db.dialect
    compiled = []
    from crm.analytics.churn import customer_count
    from crm.analytics.refresh import churn_config

    with db.session() as session:
        every = max(1, customer_count(session) // churn_config(_settings(url)).max_rows_per_cutoff)
    for stmt in _statements(dialect, _cutoffs(url), every):
        c = stmt.compile(dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True})
        params = c.construct_params()
        processors = c._bind_processors  # same parameter conversion the ORM does, done up front
        compiled.append(
            (
                str(c),
                {k: processors[k](v) if k in processors else v for k, v in params.items()},
                c.positiontup,
            )
        )
    started = time.perf_counter()
    rows = 0
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for sql, params, order in compiled:
            cur = raw.cursor()
            cur.execute(sql, [params[k] for k in order] if order else params)
            while True:
                part = cur.fetchmany(100_000)
                if not part:
                    break
                rows += len(np.array(part, dtype=object))
            cur.close()
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb(), "rows": rows}


def step_bare_fit(url: str, model: str = "logistic_regression") -> dict[str, object]:
    """The calibrated fit of the model the refresh chose and one k-means, on the refresh's own matrices."""
    import numpy as np
    from sklearn.cluster import KMeans

    from crm.analytics import churn, segments
    from crm.analytics.features import build_features, model_matrix
    from crm.analytics.refresh import churn_config
    from crm.db import Database

    db = Database(url)
    settings = _settings(url)
    config = churn_config(settings)
    rng = np.random.default_rng(config.seed)
    with db.session() as session:
        sets = [churn.labelled_set(session, c, config, rng=rng) for c in _cutoffs(url)[1:]]
        features = build_features(session, CUTOFF)
    x = np.vstack([model_matrix(s.features) for s in sets])
    y = np.concatenate([s.churned for s in sets])
    xc = segments.cluster_matrix(features)
    started = time.perf_counter()
    models = churn.candidates(config.seed, len(y))
    final = churn.Blend(list(models.values())) if model == "blend" else models[model]
    churn.PlattCalibrated.sigmoid_for(final.fit(x, y).predict_proba(x)[:, 1], y)
    sample = xc[np.random.default_rng(7).choice(len(xc), min(len(xc), 100_000), replace=False)]
    KMeans(n_clusters=4, n_init=4, random_state=7).fit(sample)
    return {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb(), "rows": int(len(y))}


def step_statements(url: str) -> dict[str, object]:
    """Each feature statement at the scoring cutoff on its own, read as the refresh reads it."""
    from crm.analytics.features import feature_statements, read_frame
    from crm.db import Database

    db = Database(url)
    statements = feature_statements(db.dialect, CUTOFF)
    seconds: dict[str, float] = {}
    with db.session() as session:
        for name, stmt in statements.items():
            started = time.perf_counter()
            read_frame(session, stmt)
            seconds[name] = round(time.perf_counter() - started, 1)
    return {"seconds": seconds, "peak_mb": _peak_mb()}


STEPS = {
    "refresh": step_refresh,
    "bare_sql": step_bare_sql,
    "bare_fit": step_bare_fit,
    "statements": step_statements,
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--interactions-per-customer", type=float, default=10.0)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CRM_BENCH_DATABASE_URL") or os.environ.get("CRM_TEST_DATABASE_URL"),
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="only time each feature statement at the scoring cutoff (to find a slow one)",
    )
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="logistic_regression", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        result = (
            step_bare_fit(args.url, args.model)
            if args.step == "bare_fit"
            else STEPS[args.step](args.url)
        )
        print(json.dumps(result))
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    lines = []
    for backend in backends:
        url = ensure_data(backend, args.customers, args.interactions_per_customer, args.pg_url)
        if args.statements:
            print(f"{backend}: feature statements (s): {run_step('statements', url)['seconds']}")
            continue
        print(f"{backend}: measuring (each step in a fresh process)...", flush=True)
        full = run_step("refresh", url)
        sql = run_step("bare_sql", url)
        fit = run_step("bare_fit", url, "--model", str(full["model"]))
        bare = float(sql["seconds"]) + float(fit["seconds"])  # type: ignore[arg-type]
        seconds = float(full["seconds"])  # type: ignore[arg-type]
        print(
            f"  refresh parts (s): {full['parts']}; model {full['model']}; bare fit rows {fit['rows']:,}",
            flush=True,
        )
        lines.append(
            f"{backend:<10} {args.customers:>9,} {seconds:>9.1f} {float(full['peak_mb']):>9.0f} "  # type: ignore[arg-type]
            f"{float(sql['seconds']):>9.1f} {float(fit['seconds']):>9.1f} {seconds / bare:>6.2f}x  "  # type: ignore[arg-type]
            f"{'ok' if seconds <= 60 and float(full['peak_mb']) <= 4096 and seconds <= 2 * bare else 'MISSES GOAL'}"  # type: ignore[arg-type]
        )
    if args.statements:
        return
    print()
    print(
        f"{'backend':<10} {'customers':>9} {'refresh s':>9} {'peak MB':>9} {'bare SQL':>9} {'bare fit':>9} {'ratio':>7}  goal (<=60 s, <=4 GB, <=2x)"
    )
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
