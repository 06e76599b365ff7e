"""The duplicate finder on many customers, beside recordlinkage on the same records.

    python bench/duplicates.py                      # 100,000 demo customers on SQLite
    python bench/duplicates.py --customers 20000
    python bench/duplicates.py --backend postgresql

The demo data set (crm.demo.generate_demo, fixed seed and anchor day) is generated once per
size and kept (see bench/common.py). Timed, each in the same run:

* ours: crm.analytics.duplicates.find_duplicates, everything `crmbot customer duplicates`
  does: the columnar reads, blocking, scoring, and leaving out dismissed pairs;
* baseline: recordlinkage on the same records read into a frame (not timed): a sorted
  neighbourhood index on the name (window 9), Jaro-Winkler on name and company, exact
  domain, and its ECM classifier.

Goal: ours <= 30 s on 100,000 customers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

GOAL_SECONDS = 30.0
SEED = 17
ANCHOR = date(2026, 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import pandas as pd
    import recordlinkage

    from bench.common import demo_database
    from crm.analytics.duplicates import find_duplicates, read_people

    db = demo_database(args.backend, args.customers, interactions=1.0, seed=SEED, anchor=ANCHOR)
    with db.session() as session:
        started = time.perf_counter()
        pairs = find_duplicates(session)
        ours = time.perf_counter() - started
        people = read_people(session)
    db.dispose()
    print(f"{len(people):,} customers on {args.backend}")
    print(f"  ours: {ours:.1f} s, {len(pairs):,} likely duplicate pairs (score >= 70)")

    frame = pd.DataFrame(
        {"name": [p.name for p in people], "company": [p.company for p in people],
         "domain": [p.domain for p in people]},
        index=[p.id for p in people],
    )
    started = time.perf_counter()
    index = recordlinkage.Index()
    index.sortedneighbourhood("name", window=9)
    candidates = index.index(frame)
    compare = recordlinkage.Compare()
    compare.string("name", "name", method="jarowinkler", threshold=0.85, label="name")
    compare.string("company", "company", method="jarowinkler", threshold=0.85, label="company")
    compare.exact("domain", "domain", label="domain")
    features = compare.compute(candidates, frame)
    matches = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
    baseline = time.perf_counter() - started
    print(f"  recordlinkage (sorted neighbourhood + ECM): {baseline:.1f} s, "
          f"{len(candidates):,} candidate pairs, {len(matches):,} matches")
    print(f"ours within {GOAL_SECONDS:.0f} s: {'yes' if ours <= GOAL_SECONDS else 'no'} "
          f"({ours:.1f} s); ours faster than recordlinkage: {'yes' if ours < baseline else 'no'}")


if __name__ == "__main__":
    main()
