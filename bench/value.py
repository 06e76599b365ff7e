"""Customer value at scale: time ``predict_value`` on 100k and 1M generated customers.

Beside it, in the same run, the floor: one pandas pass over the purchases that sums them per
customer (every method has to read the purchases once). Prints seconds per size and ours
over the floor; the verdict line: ours under 60 s at 1M customers.

    OMP_NUM_THREADS=1 python bench/value.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from crm.analytics import value

GOAL_SECONDS = 60.0


def purchases(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.5, 2.0, n)  # purchases per year, heterogeneous
    counts = 1 + rng.poisson(rate * 1.5)
    ids = np.repeat(np.arange(n), counts)
    start = pd.Timestamp("2024-01-01")
    days = rng.uniform(0, 730, len(ids))
    amount = rng.gamma(2.0, 25.0, len(ids))
    return pd.DataFrame(
        {"customer_id": ids, "date": start + pd.to_timedelta(days, unit="D"), "amount": amount}
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    cutoff = pd.Timestamp("2026-01-01")
    verdict = True
    for n in sizes:
        frame = purchases(n)
        t = time.perf_counter()
        frame.loc[frame["date"] < cutoff].groupby("customer_id")["amount"].sum()
        floor = time.perf_counter() - t
        t = time.perf_counter()
        result = value.predict_value(frame, cutoff, value.horizon_weeks(12))
        ours = time.perf_counter() - t
        print(
            f"{n:>9,} customers, {len(frame):>10,} purchases: ours {ours:6.1f} s "
            f"({result.method}), floor (one groupby) {floor:5.2f} s, ratio {ours / floor:5.1f}x"
        )
        if n >= 1_000_000:
            verdict = verdict and ours <= GOAL_SECONDS
    print(f"ours <= {GOAL_SECONDS:.0f} s at 1M customers: {'yes' if verdict else 'no'}")


if __name__ == "__main__":
    main()
