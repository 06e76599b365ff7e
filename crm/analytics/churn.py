"""Churn risk: who is likely to go quiet in the next horizon, and why, in words.

Who can churn: customers who have bought (a purchase or a won deal). A lead who never bought
is not a lost customer, so leads get no churn score at all (no row in the run's scores) and
never reach the churn digest. Label: a buyer *churns* at a cutoff when they neither buy nor
send anything inbound in the ``horizon`` days after it.

Time-based training, so nothing from the future leaks in:

* the labelled cutoffs are ``cutoff - horizon``, ``cutoff - 2*horizon``, ... : each label
  window ends on or before the scoring cutoff, and each feature set only reads rows before
  its own cutoff;
* model choice: every candidate (logistic regression, histogram gradient boosting, and the
  average of the two) is fitted on the older cutoffs and compared by AUC on the newest one;
* the trees are fitted once (that selection fit is final, and it stops early); the linear
  model, cheap to fit, is refitted on every labelled cutoff, the newest included; the winner
  is calibrated with the sigmoid (Platt scaling) that maps the selection fit's scores on the
  newest cutoff, which that fit had not seen, to its outcomes.

Cost does not grow with the customer base: every labelled cutoff's features come from the
refresh's one read of the store (``features.read_snapshot``), for a fixed-size sample of
buyers (``max_rows_per_cutoff``), and the gradient boosting stops early.

Cold start: with fewer than ``min_labelled`` labelled customers (or too few of either
outcome), no model is trained. The transparent score is then

    risk = 1 - exp(-days_since_engagement / usual_gap)

where ``usual_gap`` is the customer's average days between purchase days (at least 7, at
most 365; half the horizon when they bought once or never): the longer the silence compared
with their own rhythm, the higher the risk. Scores carry ``method="cold_start"`` and the run
says so.

Reasons: the linear model (a candidate, a member of the blend, and fitted beside the trees
when they win) splits each customer's log-odds into one term per feature, against the
average training customer. Summed by group of related features, the terms pushing this
customer's risk up most are the reasons, rendered with the customer's own numbers ("no
purchase in 120 days (usually every 30)", "no reply to 2 emails in 21 days"): one matrix
product for every scored customer, no extra prediction.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sqlmodel import Session

from crm.analytics.features import (
    CHANNELS,
    CUSTOMERS,
    DEAL_STATUSES,
    MODEL_FEATURES,
    Snapshot,
    engaged_between,
    features_at,
    model_matrix,
    read_snapshot,
)
from crm.models import Channel

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ChurnConfig:
    horizon_days: int = 90
    training_cutoffs: int = 4
    # Labelled cutoffs are this far apart: monthly snapshots give more (and more recent) examples.
    cutoff_step_days: int = 30
    min_labelled: int = 200
    min_per_class: int = 20
    # A fixed-size sample of buyers: the model's cost does not grow with the customer base.
    max_rows_per_cutoff: int = 30_000
    high_risk: float = 0.6
    medium_risk: float = 0.3
    max_reasons: int = 3
    # A feature group is a reason when it adds at least this much to the log-odds of churning.
    min_reason_push: float = 0.05
    seed: int = 7


@dataclass
class LabelledSet:
    cutoff: datetime
    features: pd.DataFrame
    churned: np.ndarray  # 1 = no purchase or inbound message in the horizon


@dataclass
class ChurnModel:
    """A fitted, calibrated model plus what is needed to explain it."""

    estimator: Any
    kind: str
    medians: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    # The fitted linear model whose per-feature terms give the reasons.
    explainer: Any = None

    def predict(self, frame: pd.DataFrame, x: np.ndarray | None = None) -> np.ndarray:
        """Churn probabilities; ``x`` is ``model_matrix(frame)`` when the caller has it."""
        return self.estimator.predict_proba(model_matrix(frame) if x is None else x)[:, 1]


@dataclass
class ChurnScores:
    frame: pd.DataFrame  # probability, risk_level, value_at_stake, reasons, method
    method: str
    meta: dict[str, Any]
    model: ChurnModel | None = None


def _signed_log(x: np.ndarray) -> np.ndarray:
    """sign(x) * log(1 + |x|), in one buffer (explaining scores calls it on big matrices)."""
    out = np.abs(x)
    np.log1p(out, out=out)
    return np.copysign(out, x, out=out)


class FillEmptyColumns(TransformerMixin, BaseEstimator):
    """Columns with no value at all in training (e.g. no emails in a purchases-only data set)
    become 0: the gradient boosting's binning cannot handle an all-missing column."""

    def fit(self, x: np.ndarray, y: Any = None) -> FillEmptyColumns:
        self.empty_ = np.isnan(x).all(axis=0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if not self.empty_.any():
            return x
        x = x.copy()
        x[:, self.empty_] = 0.0
        return x


class MedianImputer(TransformerMixin, BaseEstimator):
    """What ``SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)``
    does (missing values become the column's training median, 0 for a column with none, and a
    0/1 column is added for each feature that had missing values), with the medians from
    ``np.nanmedian``: SimpleImputer's masked-array median took 2 s of a 6 s training."""

    def fit(self, x: np.ndarray, y: Any = None) -> MedianImputer:
        missing = np.isnan(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
            medians = np.nanmedian(x, axis=0)
        self.statistics_ = np.where(np.isnan(medians), 0.0, medians)
        self.indicator_features_ = np.flatnonzero(missing.any(axis=0))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        filled = np.where(missing, self.statistics_, x)
        return np.hstack([filled, missing[:, self.indicator_features_].astype(np.float64)])


class Blend(ClassifierMixin, BaseEstimator):
    """The average of fitted models' probabilities: a linear model's smooth extrapolation plus a
    tree model's interactions, usually steadier than either alone."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    def fit(self, x: np.ndarray, y: np.ndarray) -> Blend:
        self.members_ = [clone(m).fit(x, y) for m in self.members]
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.mean([m.predict_proba(x) for m in self.members_], axis=0)


class PlattCalibrated(BaseEstimator):
    """``estimator``'s probabilities mapped through a sigmoid of their log-odds (Platt scaling).

    The sigmoid is learnt out of time (a fit that had not seen the newest labelled cutoff,
    scored on it) and then applied to the final fit on every labelled cutoff: the calibration
    stays honest and the final model still learns from the most recent customers.
    """

    def __init__(self, estimator: Any, slope: float = 1.0, intercept: float = 0.0) -> None:
        self.estimator = estimator
        self.slope = slope
        self.intercept = intercept

    @staticmethod
    def log_odds(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    @classmethod
    def sigmoid_for(cls, p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(slope, intercept) of the sigmoid mapping probabilities ``p`` best to outcomes ``y``."""
        fit = LogisticRegression(C=1e6, max_iter=1000).fit(cls.log_odds(p).reshape(-1, 1), y)
        return float(fit.coef_[0, 0]), float(fit.intercept_[0])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.slope * self.log_odds(self.estimator.predict_proba(x)[:, 1]) + self.intercept
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1 - p, p])


def candidates(seed: int, rows: int = 100_000) -> dict[str, Any]:
    """The models compared by time-based validation.

    Both are regularised for what they face: a model learnt on past cutoffs scores customers
    who are older than any it has seen, so the linear model is strongly penalised (dozens of
    correlated counts) and each leaf of the trees holds 0.2% of the ``rows`` they learn from
    (at least 20, at most 200 customers).
    """
    return {
        "logistic_regression": make_pipeline(
            MedianImputer(),
            FunctionTransformer(_signed_log),
            StandardScaler(),
            LogisticRegression(max_iter=3000, C=0.05),
        ),
        "hist_gradient_boosting": make_pipeline(
            FillEmptyColumns(),
            HistGradientBoostingClassifier(
                learning_rate=0.1,
                max_iter=100,
                max_leaf_nodes=15,
                min_samples_leaf=int(np.clip(rows // 500, 20, 200)),
                l2_regularization=1.0,
                # Stops when 10 rounds in a row no longer improve a held-out tenth.
                early_stopping=True,
                n_iter_no_change=10,
                random_state=seed,
            ),
        ),
    }


def ever_bought(snapshot: Snapshot) -> np.ndarray:
    """A mask over the snapshot's customers: a purchase or a won deal before its end."""
    ev = snapshot.events
    out = np.zeros(len(snapshot), dtype=bool)
    out[ev.customer[ev.channel == CHANNELS.index(Channel.purchase.value)]] = True
    deals = snapshot.deals
    out[deals["customer"][deals["status"] == DEAL_STATUSES.index("won")]] = True
    return out


def training_sample(snapshot: Snapshot, config: ChurnConfig) -> Snapshot:
    """A fixed-seed sample of the customers who ever bought, at most ``max_rows_per_cutoff``:
    learning saturates long before a million rows, and every labelled cutoff reads only the
    sample's rows."""
    buyers = np.flatnonzero(ever_bought(snapshot))
    if len(buyers) > config.max_rows_per_cutoff:
        rng = np.random.default_rng(config.seed)
        buyers = np.sort(rng.choice(buyers, config.max_rows_per_cutoff, replace=False))
    keep = np.zeros(len(snapshot), dtype=bool)
    keep[buyers] = True
    return snapshot.subset(keep)


def labelled_sets(snapshot: Snapshot, cutoff: datetime, config: ChurnConfig) -> list[LabelledSet]:
    """For each past cutoff (newest first): the features of customers who had bought by then,
    labelled from the horizon after it. ``snapshot`` must reach ``cutoff``."""
    horizon = timedelta(days=config.horizon_days)
    step = timedelta(days=config.cutoff_step_days)
    sample = training_sample(snapshot, config)
    sets: list[LabelledSet] = []
    for n in range(max(2, config.training_cutoffs)):
        past = cutoff - horizon - step * n
        features = features_at(sample, past)
        engaged = engaged_between(sample, past, past + horizon)
        position = np.searchsorted(sample.customer_id, features.index.to_numpy())
        churned = (~engaged[position]).astype(np.int64)
        buyers = features["buyer"].to_numpy()
        if buyers.any():
            sets.append(LabelledSet(past, features[buyers], churned[buyers]))
    return sets


def customer_count(bind: Session | sa.Connection) -> int:
    conn = bind.connection() if isinstance(bind, Session) else bind
    return int(conn.execute(sa.select(sa.func.count()).select_from(CUSTOMERS)).scalar_one())


def _enough(sets: list[LabelledSet], config: ChurnConfig) -> str | None:
    y = np.concatenate([s.churned for s in sets]) if sets else np.array([])
    if len(sets) < 2:
        return "not enough history for a training and a validation cutoff"
    if len(y) < config.min_labelled:
        return f"only {len(y)} labelled customers (need {config.min_labelled})"
    for s in sets:
        positives = int(s.churned.sum())
        if min(positives, len(s.churned) - positives) < config.min_per_class:
            return f"too few customers of one outcome at {s.cutoff:%Y-%m-%d}"
    return None


def _explainer(name: str, fitted: Any) -> Any:
    """The linear pipeline inside a fitted candidate (None for the trees alone)."""
    if name == "logistic_regression":
        return fitted
    if name == "blend":
        return fitted.members_[0]
    return None


def train(
    data: Snapshot | Session | sa.Connection,
    cutoff: datetime,
    config: ChurnConfig = ChurnConfig(),
    *,
    progress: Progress | None = None,
) -> tuple[ChurnModel | None, dict[str, Any]]:
    """Fit on past cutoffs only: (model, meta), or (None, meta with the cold-start reason).

    ``data`` is the refresh's snapshot of the store (read once for everything), or a
    session to read one from."""
    say = progress or (lambda _msg: None)
    snapshot = data if isinstance(data, Snapshot) else read_snapshot(data, cutoff)
    say("labelling past cutoffs")
    sets = labelled_sets(snapshot, cutoff, config)
    meta: dict[str, Any] = {
        "horizon_days": config.horizon_days,
        "population": "customers who have bought (a purchase or a won deal)",
        "label_cutoffs": [s.cutoff.isoformat() for s in sets],
        "labelled_rows": int(sum(len(s.churned) for s in sets)),
        "churn_rate": float(np.mean(np.concatenate([s.churned for s in sets]))) if sets else None,
    }
    problem = _enough(sets, config)
    if problem:
        meta["cold_start_reason"] = problem
        return None, meta
    valid = sets[0]
    # Candidates learn from every older cutoff (their label windows may overlap the newest
    # one's, never its customers' later features) and are compared on the newest cutoff.
    older = sets[1:]
    x_train = np.vstack([model_matrix(s.features) for s in older])
    y_train = np.concatenate([s.churned for s in older])
    x_valid, y_valid = model_matrix(valid.features), valid.churned
    aucs: dict[str, float] = {}
    fitted: dict[str, Any] = {}
    scores: dict[str, np.ndarray] = {}
    for name, estimator in candidates(config.seed, len(y_train)).items():
        say(f"validating {name.replace('_', ' ')}")
        fitted[name] = estimator.fit(x_train, y_train)
        scores[name] = fitted[name].predict_proba(x_valid)[:, 1]
        aucs[name] = float(roc_auc_score(y_valid, scores[name]))
    # The average of the two is a third candidate, validated the same way at no extra fit.
    scores["blend"] = np.mean([scores[n] for n in fitted], axis=0)
    aucs["blend"] = float(roc_auc_score(y_valid, scores["blend"]))
    best = max(aucs, key=lambda n: aucs[n])
    # Calibrated out of time: the sigmoid maps the selection fit's scores on the newest cutoff,
    # which that fit has not seen, to what happened there.
    slope, intercept = PlattCalibrated.sigmoid_for(scores[best], y_valid)
    # The trees are fitted once: the selection fit is the final one (a second fit would cost
    # as much again). The linear model is cheap, so it is refitted on every labelled cutoff,
    # the newest included (its customers are the closest to today's): it is the final model
    # or the blend's linear half, and it gives the reasons.
    final_sets = [valid, *older]
    say("fitting the linear model on every labelled cutoff")
    x_final = np.vstack([x_valid, x_train])
    y_final = np.concatenate([y_valid, y_train])
    linear = candidates(config.seed, len(y_final))["logistic_regression"].fit(x_final, y_final)
    trees = fitted["hist_gradient_boosting"]
    final: Any = linear if best == "logistic_regression" else trees
    if best == "blend":
        final = Blend([linear, trees])
        final.members_, final.classes_ = [linear, trees], np.array([0, 1])
    explainer = linear
    calibrated = PlattCalibrated(final, slope, intercept)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns have no median
        medians = {
            name: float(v)
            for name, v in zip(MODEL_FEATURES, np.nanmedian(x_final, axis=0), strict=True)
        }
    meta |= {
        "model": best,
        "validation_auc": aucs[best],
        "candidates_auc": aucs,
        "validation_cutoff": valid.cutoff.isoformat(),
        "selection_cutoffs": [s.cutoff.isoformat() for s in older],
        "features": list(MODEL_FEATURES),
        "trained_at": datetime.now(UTC).isoformat(),
        "training_rows": int(sum(len(s.churned) for s in final_sets)),
        "tree_training_rows": int(len(y_train)),
        "calibration_rows": int(len(y_valid)),
    }
    model = ChurnModel(
        estimator=calibrated, kind=best, medians=medians, meta=meta, explainer=explainer
    )
    return model, meta


def save_model(model: ChurnModel, directory: Path, cutoff: datetime) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"churn-{cutoff:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.joblib"
    joblib.dump(
        {
            "estimator": model.estimator,
            "kind": model.kind,
            "medians": model.medians,
            "meta": model.meta,
            "explainer": model.explainer,
        },
        path,
    )
    return path


def load_model(path: Path) -> ChurnModel:
    data = joblib.load(path)
    return ChurnModel(
        estimator=data["estimator"],
        kind=data["kind"],
        medians=data["medians"],
        meta=data["meta"],
        explainer=data.get("explainer"),
    )


# ------------------------------------------------------------------ reasons in words


def _days(v: float) -> int:
    return int(round(v))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _reason_recency(r: Any) -> str | None:
    d, gap = r["recency_days"], r["avg_purchase_gap_days"]
    if d == d:  # not NaN (a plain float test: this runs for every flagged customer)
        if gap == gap and gap >= 1 and d > gap:
            every = "day" if _days(gap) == 1 else f"{_days(gap)}"
            return f"no purchase in {_days(d)} days (usually every {every})"
        return f"no purchase in {_days(d)} days" if d >= 14 else None
    return None  # no dated purchase (a won deal only)


def _reason_orders(r: Any) -> str | None:
    before, now = r["purchases_prev_90"], r["purchases_90"]
    if before > 0 and now < before:
        return f"orders down {round(100 * (before - now) / before)}% vs the previous quarter"
    vb, vn = r["value_prev_90"], r["value_90"]
    if vb > 0 and vn < 0.8 * vb:
        return f"spend down {round(100 * (vb - vn) / vb)}% vs the previous quarter"
    return None


def _reason_frequency(r: Any) -> str | None:
    n = int(r["purchase_days"])
    if n == 0:
        return None  # bought through a won deal only: the deal reasons speak for it
    return "bought only once" if n == 1 else (f"only {n} purchases so far" if n <= 3 else None)


def _reason_silence(r: Any) -> str | None:
    d = r["days_since_inbound"]
    return f"no message from them in {_days(d)} days" if d == d and d >= 14 else None


def _reason_unanswered(r: Any) -> str | None:
    n = int(r["unanswered_inbound"])
    if n <= 0:
        return None
    return f"no reply to {_plural(n, 'email')} in {_plural(_days(r['unanswered_days']), 'day')}"


def _reason_outreach(r: Any) -> str | None:
    d = r["days_since_outbound"]
    if d != d:  # NaN
        return "we have never reached out"
    return f"no outreach from us in {_days(d)} days" if d >= 21 else None


def _reason_activity(r: Any) -> str | None:
    before, now = r["interactions_prev_90"], r["interactions_90"]
    if before > 0 and now < before:
        return f"interactions down {round(100 * (before - now) / before)}% vs the previous quarter"
    if now <= 2:
        n = int(now)
        if n == 0:
            return "no interactions in 90 days"
        return f"only {_plural(n, 'interaction')} in 90 days"
    return None


def _reason_deals(r: Any) -> str | None:
    if r["lost_deals_90"] > 0:
        return f"lost {_plural(int(r['lost_deals_90']), 'deal')} in the last 90 days"
    if r["purchase_days"] == 0 and r["won_deals"] > 0:
        return f"no purchase besides {_plural(int(r['won_deals']), 'won deal')}"
    return None


def _reason_follow_ups(r: Any) -> str | None:
    n = int(r["overdue_follow_ups"])
    return f"{_plural(n, 'follow-up')} overdue" if n else None


def _reason_tenure(r: Any) -> str | None:
    if r["tenure_days"] >= 90:
        return None
    return f"new customer ({_plural(_days(r['tenure_days']), 'day')})"


def _reason_satisfaction(r: Any) -> str | None:
    latest = r["satisfaction_latest"]
    if latest != latest or latest > 2:  # NaN (never rated) or not a low score
        return None
    return f"rated us {int(latest)}/5 in their last survey"


# Feature groups: reset together to the median to see how much they push the risk.
REASON_GROUPS: dict[str, tuple[tuple[str, ...], Callable[[Any], str | None]]] = {
    "recency": (("recency_days", "overdue_ratio", "days_since_engagement"), _reason_recency),
    "orders": (
        (
            "purchases_30",
            "purchases_90",
            "purchases_prev_90",
            "purchase_trend",
            "value_90",
            "value_prev_90",
            "value_trend",
        ),
        _reason_orders,
    ),
    "frequency": (
        (
            "frequency",
            "purchase_days",
            "monetary",
            "purchase_value",
            "purchases_365",
            "avg_purchase_gap_days",
        ),
        _reason_frequency,
    ),
    "silence": (("days_since_inbound", "inbound_30", "inbound_90", "inbound_365"), _reason_silence),
    "unanswered": (("unanswered_inbound", "unanswered_days"), _reason_unanswered),
    "outreach": (
        ("days_since_outbound", "outbound_30", "outbound_90", "outbound_365"),
        _reason_outreach,
    ),
    "activity": (
        (
            "interactions_30",
            "interactions_90",
            "interactions_365",
            "interactions_prev_90",
            "interaction_trend",
            *(
                f
                for f in MODEL_FEATURES
                if f.split("_")[0] in ("email", "slack", "call", "meeting", "note")
            ),
        ),
        _reason_activity,
    ),
    "deals": (
        ("open_deals", "won_deals", "lost_deals", "lost_deals_90", "open_deal_value", "won_value"),
        _reason_deals,
    ),
    "follow_ups": (("overdue_follow_ups",), _reason_follow_ups),
    "tenure": (("tenure_days", "first_purchase_days"), _reason_tenure),
    "satisfaction": (("satisfaction_latest", "satisfaction_mean"), _reason_satisfaction),
}


# What the reason texts read (their rows are built from these columns only).
REASON_COLUMNS: tuple[str, ...] = (
    "recency_days", "avg_purchase_gap_days", "purchases_90", "purchases_prev_90", "value_90",
    "value_prev_90", "purchase_days", "days_since_inbound", "unanswered_inbound",
    "unanswered_days", "days_since_outbound", "interactions_90", "interactions_prev_90",
    "lost_deals_90", "won_deals", "overdue_follow_ups", "tenure_days", "satisfaction_latest",
)  # fmt: skip


# Customers explained at once (see ``explain``).
EXPLAIN_SLICE = 50_000


class _Row:
    """One customer's reason columns, read by name (``row["recency_days"]``) straight from
    the column lists: a dict per customer would cost most of explaining a million of them."""

    __slots__ = ("_columns", "_i")

    def __init__(self, columns: dict[str, list[float]], i: int) -> None:
        self._columns = columns
        self._i = i

    def __getitem__(self, key: str) -> float:
        return self._columns[key][self._i]


def _reason_columns(frame: pd.DataFrame) -> dict[str, list[float]]:
    return {c: frame[c].to_numpy(dtype=np.float64).tolist() for c in REASON_COLUMNS}


def _records(frame: pd.DataFrame) -> list[_Row]:
    columns = _reason_columns(frame)
    return [_Row(columns, i) for i in range(len(frame))]


def feature_pushes(explainer: Any, x: np.ndarray) -> np.ndarray:
    """Each row's log-odds of churning split into one term per model feature, against the
    average training customer (the linear model's standardised inputs times its weights; a
    feature's missing-value indicator counts as the feature's own term)."""
    *steps, linear = (step for _, step in explainer.steps)
    z = x
    for step in steps:
        z = step.transform(z)
    terms = z * linear.coef_[0]
    n = len(MODEL_FEATURES)
    imputer = steps[0]
    indicator = getattr(imputer, "indicator_", None)  # a SimpleImputer, in older model files
    flagged = getattr(imputer, "indicator_features_", None)
    if flagged is None:
        flagged = indicator.features_ if indicator is not None else np.array([], int)
    owners = np.concatenate([np.arange(n), flagged]).astype(np.int64)
    to_feature = np.zeros((terms.shape[1], n))
    to_feature[np.arange(terms.shape[1]), owners[: terms.shape[1]]] = 1.0
    return terms @ to_feature


def group_pushes(explainer: Any, x: np.ndarray) -> np.ndarray:
    """Each row's feature terms summed by reason group (columns in REASON_GROUPS order)."""
    index = {name: n for n, name in enumerate(MODEL_FEATURES)}
    member = np.zeros((len(MODEL_FEATURES), len(REASON_GROUPS)))
    for g, (cols, _) in enumerate(REASON_GROUPS.values()):
        member[[index[c] for c in cols], g] = 1.0
    return feature_pushes(explainer, x) @ member


def explain(
    model: ChurnModel,
    frame: pd.DataFrame,
    max_reasons: int = 3,
    min_push: float = 0.05,
    x: np.ndarray | None = None,
) -> list[list[str]]:
    """For each row: the feature groups pushing its risk up most, in words, with its numbers.

    A group counts when it adds at least ``min_push`` to the log-odds and its fact holds for
    this customer (a text function returns None when, say, there was no drop in orders). When
    no such group has a fact to show, the strongest group that pushes up at all and has one is
    shown, so a reader gets the model's leading fact rather than no reason.
    """
    if frame.empty:
        return []
    if model.explainer is None:  # a model file from before reasons came from the linear terms
        return [rule_reasons(row, max_reasons) for row in _records(frame)]
    out: list[list[str]] = []
    # In slices: the transformed matrix and the reason columns of a million flagged customers
    # at once would cost more memory than all the rest of a refresh.
    for at in range(0, len(frame), EXPLAIN_SLICE):
        part = frame.iloc[at : at + EXPLAIN_SLICE]
        xs = model_matrix(part) if x is None else x[at : at + EXPLAIN_SLICE]
        out += _explain_slice(model.explainer, part, xs, max_reasons, min_push)
    return out


def _explain_slice(
    explainer: Any, frame: pd.DataFrame, x: np.ndarray, max_reasons: int, min_push: float
) -> list[list[str]]:
    pushes = group_pushes(explainer, x)
    texts = [fn for _, fn in REASON_GROUPS.values()]
    order = np.argsort(-pushes, axis=1, kind="stable")
    # Plain lists (no numpy scalar per step): the loop below runs for every flagged customer.
    ranked = np.take_along_axis(pushes, order, axis=1).tolist()
    out: list[list[str]] = []
    columns = _reason_columns(frame)
    for i, (groups, sizes) in enumerate(zip(order.tolist(), ranked, strict=True)):
        row = _Row(columns, i)
        reasons: list[str] = []
        for g, push in zip(groups, sizes, strict=True):
            # Every group pushing hard enough whose fact holds, strongest first; when none of
            # those has a fact to show, the strongest weaker one that pushes up at all.
            if len(reasons) >= max_reasons or push <= 0 or (push < min_push and reasons):
                break
            text = texts[g](row)
            if text:
                reasons.append(text)
        out.append(reasons)
    return out


def rule_reasons(row: Any, max_reasons: int = 3) -> list[str]:
    """The cold-start score's reasons: the plain facts behind it."""
    found = [
        fn(row)
        for fn in (
            _reason_recency,
            _reason_unanswered,
            _reason_follow_ups,
            _reason_orders,
            _reason_deals,
        )
    ]
    return [t for t in found if t][:max_reasons]


def cold_start_score(frame: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """The documented transparent score: silence against the customer's own rhythm."""
    gap = frame["avg_purchase_gap_days"].where(frame["purchase_days"] >= 2)
    gap = gap.fillna(horizon_days / 2).clip(7, 365)
    silence = frame["days_since_engagement"].fillna(frame["tenure_days"])
    return (1 - np.exp(-silence / gap)).to_numpy()


def risk_levels(p: np.ndarray, config: ChurnConfig) -> np.ndarray:
    return np.where(
        p >= config.high_risk, "high", np.where(p >= config.medium_risk, "medium", "low")
    )


def score(
    features: pd.DataFrame,
    model: ChurnModel | None,
    config: ChurnConfig = ChurnConfig(),
    *,
    meta: dict[str, Any] | None = None,
) -> ChurnScores:
    """Scores of customers who have bought (leads are not churn); reasons for medium/high risk."""
    frame = features[features["buyer"]]
    method = "model" if model is not None else "cold_start"
    x = model_matrix(frame) if model is not None else None
    p = (
        model.predict(frame, x)
        if model is not None
        else cold_start_score(frame, config.horizon_days)
    )
    levels = risk_levels(p, config)
    out = pd.DataFrame(
        {
            "probability": p,
            "risk_level": levels,
            "value_at_stake": frame["value_365"].to_numpy() + frame["open_deal_value"].to_numpy(),
            "method": method,
        },
        index=frame.index,
    )
    reasons: list[list[str]] = [[] for _ in range(len(frame))]
    flagged = np.flatnonzero(levels != "low")
    if len(flagged):
        sub = frame[list(REASON_COLUMNS)].iloc[flagged]  # what the texts read, and no more
        if model is not None:
            texts = explain(
                model,
                sub,
                config.max_reasons,
                config.min_reason_push,
                x=x[flagged],  # type: ignore[index]
            )
        else:
            texts = [rule_reasons(row, config.max_reasons) for row in _records(sub)]
        for n, text in zip(flagged, texts, strict=True):
            reasons[n] = text
    if model is None:
        note = "cold start: transparent score 1 - exp(-days since engagement / usual gap)"
        reasons = [[*r, note] if levels[n] != "low" else r for n, r in enumerate(reasons)]
    out["reasons"] = reasons
    return ChurnScores(frame=out, method=method, meta=meta or {}, model=model)
