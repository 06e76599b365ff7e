"""Evaluation on held-out time: does the churn model rank who comes back better than the classics?

``evaluate_cdnow`` imports the CDNOW purchases through the CSV import into a fresh
database, cuts at the end of the 39-week calibration period (Fader, Hardie & Lee) and asks,
for every customer, "will they buy in the 39-week holdout?". Every competitor sees only the
calibration period and is computed in the same run:

* ours: the churn model exactly as a refresh trains it (time-based labels inside the
  calibration period), scored as 1 - churn risk;
* BG/NBD and Pareto/NBD (lifetimes): expected purchases in the holdout;
* logistic regression on RFM (repeat frequency, recency, age T, average value), trained on
  the same past cutoffs as ours;
* frequency-then-recency: more repeat purchase days first, then the more recent.

The holdout is used once, for the table; nothing is tuned on it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from crm.analytics import churn, segments
from crm.analytics.datasets import CDNOW_CUTOFF, CDNOW_HOLDOUT_END, cdnow_transactions_csv
from crm.analytics.features import (
    Snapshot,
    engaged_between,
    features_at,
    read_snapshot,
    weekly_purchases,
)
from crm.config import Settings
from crm.db import Database
from crm.services import importer
from crm.services.actor import Actor
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
OURS = "crmbot churn model"
HISTORY_WEEKS = 52  # the purchase record's week-by-week span for the record ceiling


@dataclass
class Row:
    method: str
    auc: float
    top10_precision: float
    note: str = ""
    # Area under the precision-recall curve: how pure the list is from its top down.
    average_precision: float = 0.0


@dataclass
class Evaluation:
    dataset: str
    customers: int
    buyers_in_holdout: int
    rows: list[Row]
    stability_ari: float | None
    clusters: int
    meta: dict[str, Any] = field(default_factory=dict)
    # Not methods: what our features, and the whole week-by-week purchase record, allow when
    # fitted on the holdout's own labels.
    ceiling: Row | None = None
    history_ceiling: Row | None = None
    # Ours minus the best other method, per metric: (that method, the difference, and its 95%
    # paired bootstrap interval): whether a difference is larger than chance.
    gaps: dict[str, tuple[str, float, float, float]] = field(default_factory=dict)

    @property
    def ours(self) -> Row:
        return next(r for r in self.rows if r.method == OURS)

    @property
    def beats_all(self) -> bool:
        ours = self.ours
        others = [r for r in self.rows if r.method != OURS]
        return all(ours.auc > r.auc and ours.top10_precision > r.top10_precision for r in others)

    @property
    def meets_bar(self) -> bool:
        """Our AUC and our average precision are each at least the best other method's."""
        ours = self.ours
        others = [r for r in self.rows if r.method != OURS]
        return all(
            ours.auc >= r.auc and ours.average_precision >= r.average_precision for r in others
        )


def top_precision(y: np.ndarray, score: np.ndarray, share: float = 0.1) -> float:
    """Share of positives among the ``share`` highest scores (ties keep the input order)."""
    n = max(1, int(np.ceil(share * len(y))))
    order = np.argsort(-score, kind="stable")[:n]
    return float(np.mean(y[order]))


def _row(method: str, y: np.ndarray, score: np.ndarray, note: str = "") -> Row:
    return Row(
        method,
        float(roc_auc_score(y, score)),
        top_precision(y, score),
        note,
        float(average_precision_score(y, score)),
    )


def paired_gap(
    y: np.ndarray,
    ours: np.ndarray,
    other: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    rounds: int = 200,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``metric(ours) - metric(other)`` and its 95% interval over ``rounds`` resamples of the
    customers (the same resample for both scores, so what they share cancels out)."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        pick = rng.integers(0, len(y), len(y))
        if y[pick].min() != y[pick].max():
            diffs.append(metric(y[pick], ours[pick]) - metric(y[pick], other[pick]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(metric(y, ours) - metric(y, other)), float(low), float(high)


def ceiling(x: np.ndarray, y: np.ndarray, seed: int) -> Row:
    """How well our candidate models separate the holdout's buyers when fitted on the holdout's
    own labels (5-fold cross-validated predictions, the best candidate). It cheats on purpose,
    so it is an upper bound for any fair model on what ``x`` (one row per customer) holds, not
    a method to compare."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    best: Row | None = None
    for name, estimator in churn.candidates(seed, len(y)).items():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = cross_val_predict(clone(estimator), x, y, cv=folds, method="predict_proba")[:, 1]
        row = _row(name.replace("_", " "), y, p, "fitted on the holdout itself")
        if best is None or row.auc > best.auc:
            best = row
    assert best is not None
    return best


def rfm_summary(features: pd.DataFrame) -> pd.DataFrame:
    """The lifetimes (frequency, recency, T) summary in weeks, from our features at the cutoff."""
    first = features["first_purchase_days"].fillna(0)
    recency = (first - features["recency_days"].fillna(first)).clip(lower=0)
    repeat = (features["purchase_days"] - 1).clip(lower=0)
    # Several purchases on the first day are one purchase day: no repeat, so recency is 0.
    recency = recency.where(repeat > 0, 0.0)
    return pd.DataFrame(
        {
            "frequency": repeat,
            "recency": recency / 7.0,
            "T": first / 7.0,
            "monetary": features["purchase_value"]
            / features["frequency"].where(features["frequency"] > 0, 1),
        },
        index=features.index,
    )


def _probabilistic(
    summary: pd.DataFrame, weeks: float, progress: Progress
) -> dict[str, tuple[np.ndarray, str]]:
    try:
        from lifetimes import BetaGeoFitter, ParetoNBDFitter
        from lifetimes.utils import ConvergenceError
    except ImportError:
        raise CRMError(
            "BG/NBD and Pareto/NBD come from the lifetimes package, which is not installed.",
            hint='Install the evaluation extra: pip install "crmbot[eval]".',
        ) from None

    out: dict[str, tuple[np.ndarray, str]] = {}
    for name, fitter_class in (
        ("BG/NBD (lifetimes)", BetaGeoFitter),
        ("Pareto/NBD (lifetimes)", ParetoNBDFitter),
    ):
        progress(f"fitting {name}")
        # Unpenalised first (the published fits); a tiny penalty only when the optimiser fails.
        for penalty in (0.0, 0.001, 0.01):
            fitter = fitter_class(penalizer_coef=penalty)
            try:
                # lifetimes prints the optimiser's report when it fails; keep stdout for the table.
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    fitter.fit(summary["frequency"], summary["recency"], summary["T"])
                    expected = fitter.conditional_expected_number_of_purchases_up_to_time(
                        weeks, summary["frequency"], summary["recency"], summary["T"]
                    )
            except ConvergenceError:
                continue
            if not np.all(np.isfinite(np.asarray(expected, dtype=float))):
                continue  # an overflowing fit is no fit
            note = "expected purchases in the holdout" + (
                f" (penalizer {penalty})" if penalty else ""
            )
            out[name] = (np.asarray(expected, dtype=float), note)
            break
        else:
            logger.warning("%s did not converge on this data", name)
    return out


def _rfm_logistic(
    snapshot: Snapshot, cutoff: datetime, config: churn.ChurnConfig, features: pd.DataFrame
) -> np.ndarray:
    """Logistic regression on RFM, trained on the same past cutoffs and labels as our model."""
    xs, ys = [], []
    for s in churn.labelled_sets(snapshot, cutoff, config):
        xs.append(np.log1p(rfm_summary(s.features).to_numpy()))
        ys.append(1 - s.churned)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(np.vstack(xs), np.concatenate(ys))
    return model.predict_proba(np.log1p(rfm_summary(features).to_numpy()))[:, 1]


def evaluate_database(
    db: Database,
    *,
    dataset: str,
    settings: Settings,
    cutoff: datetime,
    holdout_end: datetime,
    purchases_only: bool,
    probabilistic: bool,
    progress: Progress | None = None,
) -> Evaluation:
    """Score every customer who has bought by ``cutoff`` with each method; label: buys in the holdout."""
    say = progress or (lambda _m: None)
    from crm.analytics.refresh import churn_config

    config = churn_config(settings)
    with db.session() as session:
        say("reading the store")
        snapshot = read_snapshot(session, cutoff)
        holdout = read_snapshot(session, holdout_end)
    model, meta = churn.train(snapshot, cutoff, config, progress=say)
    say("building features at the cutoff")
    features = features_at(snapshot, cutoff)
    features = features[features["frequency"] > 0]
    came_back = engaged_between(holdout, cutoff, holdout_end, purchases_only=purchases_only)
    y = features.index.isin(holdout.customer_id[came_back]).astype(int)
    if model is None:
        raise RuntimeError(
            f"not enough history to train the churn model: {meta.get('cold_start_reason')}"
        )
    scores = {OURS: 1 - model.predict(features)}
    notes = {OURS: f"{meta['model']}, validation AUC {meta['validation_auc']:.3f}"}
    summary = rfm_summary(features)
    weeks = (holdout_end - cutoff).days / 7.0
    if probabilistic:
        for name, (expected, note) in _probabilistic(summary, weeks, say).items():
            scores[name], notes[name] = expected, note
    say("fitting logistic regression on RFM")
    scores["logistic regression on RFM"] = _rfm_logistic(snapshot, cutoff, config, features)
    order = np.lexsort((features["recency_days"].to_numpy(), -summary["frequency"].to_numpy()))
    rank_score = np.empty(len(order))
    rank_score[order] = -np.arange(len(order), dtype=float)
    scores["frequency, then recency"] = rank_score
    rows = [_row(name, y, score, notes.get(name, "")) for name, score in scores.items()]
    gaps = {}
    for metric, fn in (("auc", roc_auc_score), ("average_precision", average_precision_score)):
        best = max(rows[1:], key=lambda r: getattr(r, metric))
        gaps[metric] = (best.method, *paired_gap(y, scores[OURS], scores[best.method], fn))
    say("fitting the ceilings on the holdout's own labels: our features, the whole purchase record")
    x = churn.model_matrix(features)
    top = ceiling(x, y, config.seed)
    with db.session() as session:
        history = weekly_purchases(session, cutoff, features.index, weeks=HISTORY_WEEKS)
    record_top = ceiling(np.hstack([x, history]), y, config.seed)
    say("checking segment stability over 5 seeds")
    clustering = segments.kmeans_segments(
        features,
        k_range=(settings.segment_k_min, settings.segment_k_max),
        seed=settings.analytics_seed,
        silhouette_sample=settings.segment_silhouette_sample,
        stability_seeds=5,
    )
    return Evaluation(
        dataset=dataset,
        customers=int(len(features)),
        buyers_in_holdout=int(y.sum()),
        rows=rows,
        stability_ari=clustering.stability_ari,
        clusters=clustering.k,
        meta={"churn": meta, "cutoff": cutoff.isoformat(), "holdout_end": holdout_end.isoformat()},
        ceiling=top,
        history_ceiling=record_top,
        gaps=gaps,
    )


def _scratch_db(directory: Path) -> Database:
    db = Database(f"sqlite:///{directory / 'evaluation.db'}")
    db.upgrade()
    return db


def evaluate_cdnow(*, settings: Settings, progress: Progress | None = None) -> Evaluation:
    """The CDNOW evaluation in a scratch SQLite database (the configured one is not touched)."""
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="crmbot-eval-") as tmp:
        db = _scratch_db(Path(tmp))
        say("importing CDNOW purchases through the CSV import")
        with db.transaction() as session:
            result = importer.import_transactions(
                session,
                cdnow_transactions_csv(),
                actor=Actor.system("evaluate"),
                settings=settings,
                source="cdnow",
            )
        say(f"imported {result.created:,} purchases of {result.customers_created:,} customers")
        try:
            return evaluate_database(
                db,
                dataset="cdnow",
                settings=settings,
                cutoff=CDNOW_CUTOFF,
                holdout_end=CDNOW_HOLDOUT_END,
                purchases_only=True,
                probabilistic=True,
                progress=say,
            )
        finally:
            db.dispose()


def evaluate_demo(
    *, settings: Settings, customers: int = 20_000, seed: int = 42, progress: Progress | None = None
) -> Evaluation:
    """The same comparison on generated demo data: cut 90 days before the end, label = engages after."""
    from crm.demo import generate_demo

    say = progress or (lambda _m: None)
    anchor = date(2026, 1, 1)
    end = datetime.combine(anchor, time(0), tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="crmbot-eval-") as tmp:
        db = _scratch_db(Path(tmp))
        say(f"generating {customers:,} demo customers")
        with db.transaction() as session:
            generate_demo(session, settings=settings, customers=customers, seed=seed, anchor=anchor)
        try:
            return evaluate_database(
                db,
                dataset="demo",
                settings=settings,
                cutoff=end - timedelta(days=settings.churn_horizon_days),
                holdout_end=end,
                purchases_only=False,
                probabilistic=True,
                progress=say,
            )
        finally:
            db.dispose()


@dataclass
class SatisfactionEvaluation:
    """The churn model trained with and without survey ratings on the same demo data."""

    customers: int
    rated: int  # customers scored who have a rating before the cutoff
    with_ratings: Row
    without_ratings: Row
    auc_gap: tuple[float, float, float]  # (with - without, 95% interval low, high)
    average_precision_gap: tuple[float, float, float]

    @property
    def helps(self) -> bool:
        """Ratings help when both measures rise and the AUC rise's interval is above zero."""
        return (
            self.with_ratings.auc > self.without_ratings.auc
            and self.with_ratings.average_precision > self.without_ratings.average_precision
            and self.auc_gap[1] > 0
        )


def evaluate_satisfaction(
    *, settings: Settings, customers: int = 20_000, seed: int = 42, progress: Progress | None = None
) -> SatisfactionEvaluation:
    """Whether survey ratings help the churn model on demo data: the same split and labels as
    ``evaluate_demo``, the model trained once with the customers' ratings and once with them
    hidden (the features then say "never rated" for everyone), each scored on the holdout."""
    import dataclasses

    from crm.analytics.features import no_surveys
    from crm.analytics.refresh import churn_config
    from crm.demo import generate_demo

    say = progress or (lambda _m: None)
    anchor = date(2026, 1, 1)
    end = datetime.combine(anchor, time(0), tzinfo=UTC)
    cutoff = end - timedelta(days=settings.churn_horizon_days)
    config = churn_config(settings)
    with tempfile.TemporaryDirectory(prefix="crmbot-eval-") as tmp:
        db = _scratch_db(Path(tmp))
        try:
            say(f"generating {customers:,} demo customers")
            with db.transaction() as session:
                generate_demo(
                    session, settings=settings, customers=customers, seed=seed, anchor=anchor
                )
            with db.session() as session:
                say("reading the store")
                snapshot = read_snapshot(session, cutoff)
                holdout = read_snapshot(session, end)
        finally:
            db.dispose()
    came_back = engaged_between(holdout, cutoff, end, purchases_only=False)
    rows: dict[str, Row] = {}
    scores: dict[str, np.ndarray] = {}
    y: np.ndarray | None = None
    rated = 0
    for name, snap in (
        ("with ratings", snapshot),
        ("without ratings", dataclasses.replace(snapshot, surveys=no_surveys())),
    ):
        say(f"training the churn model {name}")
        model, meta = churn.train(snap, cutoff, config, progress=say)
        if model is None:
            raise RuntimeError(f"not enough history to train: {meta.get('cold_start_reason')}")
        features = features_at(snap, cutoff)
        features = features[features["frequency"] > 0]
        y = features.index.isin(holdout.customer_id[came_back]).astype(int)
        if name == "with ratings":
            rated = int(features["satisfaction_latest"].notna().sum())
        scores[name] = 1 - model.predict(features)
        rows[name] = _row(name, y, scores[name], meta["model"])
    assert y is not None
    gaps = {
        metric: paired_gap(y, scores["with ratings"], scores["without ratings"], fn)
        for metric, fn in (("auc", roc_auc_score), ("average_precision", average_precision_score))
    }
    return SatisfactionEvaluation(
        customers=len(y),
        rated=rated,
        with_ratings=rows["with ratings"],
        without_ratings=rows["without ratings"],
        auc_gap=gaps["auc"],
        average_precision_gap=gaps["average_precision"],
    )
