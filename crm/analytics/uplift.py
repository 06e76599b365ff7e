"""Uplift: whom a campaign moves, and how well a model ranks them (Qini).

Our model is a choice among a few plain uplift learners (two-model and class-transformation
logistic regression, and a two-model of small, strongly regularised gradient-boosted trees),
made by cross-validated Qini on the training data only. The Hillstrom evaluation compares it,
on a stratified held-out half, with random targeting, a response model and scikit-learn's
gradient boosting in a two-model learner with default settings, all computed in the same run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from crm.analytics.datasets import HILLSTROM_ARMS, load_hillstrom
from crm.models.campaign import CONTROL
from crm.services import campaigns as campaign_svc
from crm.services.campaigns import ArmStats, ArmTotals, Report, Uplift, summarise

logger = logging.getLogger(__name__)

OURS = "crmbot uplift model"
TOP_SHARE = 0.3


# ---------------------------------------------------------------- measures


def qini_curve(
    score: np.ndarray, treated: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(share targeted, incremental responders per customer of the whole population) when the
    highest scores are targeted first: R_t(k) - R_c(k) * N_t(k) / N_c(k), over N."""
    order = np.argsort(-score, kind="stable")
    t, yy = treated[order].astype(float), y[order].astype(float)
    n_t, n_c = np.cumsum(t), np.cumsum(1 - t)
    r_t, r_c = np.cumsum(yy * t), np.cumsum(yy * (1 - t))
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(n_c > 0, r_t - r_c * n_t / np.maximum(n_c, 1), 0.0)
    n = len(score)
    share = np.arange(1, n + 1) / n
    return np.concatenate([[0.0], share]), np.concatenate([[0.0], gain / n])


def qini_coefficient(score: np.ndarray, treated: np.ndarray, y: np.ndarray) -> float:
    """The area between the Qini curve and the line of random targeting (0 for random; higher
    is better), in incremental responders per customer."""
    x, q = qini_curve(score, treated, y)
    return float(np.trapezoid(q - x * q[-1], x))


def top_uplift(
    score: np.ndarray, treated: np.ndarray, y: np.ndarray, share: float = TOP_SHARE
) -> float:
    """Response rate of the treated minus that of the control, among the top ``share`` by score."""
    k = max(1, int(round(len(score) * share)))
    top = np.argsort(-score, kind="stable")[:k]
    t, yy = treated[top].astype(bool), y[top].astype(float)
    if t.sum() == 0 or (~t).sum() == 0:
        return 0.0
    return float(yy[t].mean() - yy[~t].mean())


# ---------------------------------------------------------------- learners


class Learner(Protocol):
    def fit(self, x: np.ndarray, treated: np.ndarray, y: np.ndarray) -> Learner: ...
    def uplift(self, x: np.ndarray) -> np.ndarray: ...


def _logit() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))


def _small_trees() -> Any:
    return HistGradientBoostingClassifier(
        max_depth=3,
        learning_rate=0.05,
        max_iter=150,
        min_samples_leaf=200,
        l2_regularization=1.0,
        random_state=0,
    )


@dataclass
class TwoModel:
    """P(y | x, treated) - P(y | x, control), one classifier per arm."""

    make: Callable[[], Any]
    models: list[Any] = field(default_factory=list)

    def fit(self, x: np.ndarray, treated: np.ndarray, y: np.ndarray) -> TwoModel:
        t = treated.astype(bool)
        self.models = [self.make().fit(x[t], y[t]), self.make().fit(x[~t], y[~t])]
        return self

    def uplift(self, x: np.ndarray) -> np.ndarray:
        return self.models[0].predict_proba(x)[:, 1] - self.models[1].predict_proba(x)[:, 1]


@dataclass
class ClassTransformation:
    """Transformed outcome: Z = 1 when (treated, responded) or (control, did not), each arm
    weighted to half, so that uplift = 2 P(Z = 1 | x) - 1 (Jaskowski & Jaroszewicz)."""

    make: Callable[[], Any]
    model: Any = None

    def fit(self, x: np.ndarray, treated: np.ndarray, y: np.ndarray) -> ClassTransformation:
        t = treated.astype(bool)
        z = (t & (y > 0)) | (~t & (y == 0))
        p = t.mean()
        weight = np.where(t, 0.5 / p, 0.5 / (1 - p))
        self.model = self.make()
        last = self.model.steps[-1][0] if hasattr(self.model, "steps") else None
        kwargs = {f"{last}__sample_weight": weight} if last else {"sample_weight": weight}
        self.model.fit(x, z.astype(int), **kwargs)
        return self

    def uplift(self, x: np.ndarray) -> np.ndarray:
        return 2 * self.model.predict_proba(x)[:, 1] - 1


@dataclass
class TreatedResponse:
    """P(y | x, treated) alone: those most likely to respond when mailed. An uplift ranking
    when the campaign moves people in proportion to how ready they are anyway."""

    make: Callable[[], Any]
    model: Any = None

    def fit(self, x: np.ndarray, treated: np.ndarray, y: np.ndarray) -> TreatedResponse:
        t = treated.astype(bool)
        self.model = self.make().fit(x[t], y[t])
        return self

    def uplift(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)[:, 1]


CANDIDATES: dict[str, Callable[[], Learner]] = {
    "treated-arm response, logistic regression": lambda: TreatedResponse(_logit),
    "two-model logistic regression": lambda: TwoModel(_logit),
    "class transformation, logistic regression": lambda: ClassTransformation(_logit),
    "two-model small gradient-boosted trees": lambda: TwoModel(_small_trees),
}


def choose(
    x: np.ndarray, treated: np.ndarray, y: np.ndarray, *, folds: int = 3, seed: int = 7
) -> tuple[str, dict[str, float]]:
    """The candidate with the best mean Qini over ``folds`` folds of the training data."""
    strata = treated.astype(int) * 2 + (y > 0).astype(int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: dict[str, float] = {}
    for name, make in CANDIDATES.items():
        qs = []
        for fit_idx, val_idx in splitter.split(x, strata):
            model = make().fit(x[fit_idx], treated[fit_idx], y[fit_idx])
            qs.append(qini_coefficient(model.uplift(x[val_idx]), treated[val_idx], y[val_idx]))
        scores[name] = float(np.mean(qs))
    best = max(scores, key=lambda k: scores[k])
    return best, scores


@dataclass
class UpliftModel:
    """Our model: the chosen candidate, refitted on all the training data."""

    name: str
    learner: Learner
    cv_qini: dict[str, float]

    @classmethod
    def train(
        cls, x: np.ndarray, treated: np.ndarray, y: np.ndarray, *, seed: int = 7
    ) -> UpliftModel:
        name, scores = choose(x, treated, y, seed=seed)
        return cls(name, CANDIDATES[name]().fit(x, treated, y), scores)

    def uplift(self, x: np.ndarray) -> np.ndarray:
        return self.learner.uplift(x)


# ---------------------------------------------------------------- Hillstrom


HILLSTROM_CONTROL = HILLSTROM_ARMS[-1]


def hillstrom_features(frame: pd.DataFrame) -> np.ndarray:
    """Numbers from the customer columns (never the arm or an outcome)."""
    out = pd.DataFrame(
        {
            "recency": frame["recency"],
            "history": np.log1p(frame["history"]),
            "history_segment": frame["history_segment"].str[0].astype(int),
            "mens": frame["mens"],
            "womens": frame["womens"],
            "newbie": frame["newbie"],
        }
    )
    for column in ("zip_code", "channel"):
        for value in sorted(frame[column].unique()):
            out[f"{column}={value}"] = (frame[column] == value).astype(int)
    return out.to_numpy(dtype=float)


@dataclass
class TargetingRow:
    method: str
    outcome: str
    qini: float
    top_uplift: float
    note: str = ""


def evaluate_targeting(
    frame: pd.DataFrame, *, seed: int = 7, progress: Callable[[str], None] | None = None
) -> tuple[list[TargetingRow], dict[str, Any]]:
    """Every method on the same stratified held-out half, for visit and for conversion."""
    say = progress or (lambda _m: None)
    x_all = hillstrom_features(frame)
    treated_all = (frame["segment"] != HILLSTROM_CONTROL).to_numpy().astype(int)
    rows: list[TargetingRow] = []
    meta: dict[str, Any] = {}
    strata = (
        frame["segment"].astype(str)
        + "/"
        + frame["visit"].astype(str)
        + "/"
        + frame["conversion"].astype(str)
    )
    train, test = train_test_split(
        np.arange(len(frame)), test_size=0.5, stratify=strata, random_state=seed
    )
    for outcome in ("visit", "conversion"):
        y_all = frame[outcome].to_numpy().astype(int)
        x, t, y = x_all[train], treated_all[train], y_all[train]
        xt, tt, yt = x_all[test], treated_all[test], y_all[test]
        say(f"{outcome}: choosing our model by cross-validated Qini on the training half")
        ours = UpliftModel.train(x, t, y, seed=seed)
        meta[outcome] = {"chosen": ours.name, "cv_qini": ours.cv_qini}
        say(f"{outcome}: the baselines")
        rng = np.random.default_rng(seed)
        response = _logit().fit(x[t == 1], y[t == 1])
        sk_two = TwoModel(lambda: GradientBoostingClassifier(random_state=seed)).fit(x, t, y)
        scores = {
            OURS: (ours.uplift(xt), ours.name),
            "random targeting": (rng.random(len(xt)), "seeded"),
            "response model": (
                response.predict_proba(xt)[:, 1],
                "most likely to respond when mailed",
            ),
            "scikit-learn two-model (defaults)": (
                sk_two.uplift(xt),
                "GradientBoostingClassifier()",
            ),
        }
        for method, (score, note) in scores.items():
            rows.append(
                TargetingRow(
                    method,
                    outcome,
                    qini_coefficient(score, tt, yt),
                    top_uplift(score, tt, yt),
                    note,
                )
            )
        # How far ours is from the strongest other method, allowing for the held-out half's noise.
        best = max(
            (r for r in rows if r.outcome == outcome and r.method != OURS), key=lambda r: r.qini
        )
        meta[outcome]["best_other"] = best.method
        meta[outcome]["qini_gap_ci"] = bootstrap_gap(
            scores[OURS][0], scores[best.method][0], tt, yt, seed=seed
        )
    meta["train"], meta["test"] = len(train), len(test)
    return rows, meta


def beats_all(rows: list[TargetingRow]) -> bool:
    """Ours >= the best baseline on Qini and on top-30% uplift, for every outcome."""
    for outcome in {r.outcome for r in rows}:
        mine = next(r for r in rows if r.outcome == outcome and r.method == OURS)
        others = [r for r in rows if r.outcome == outcome and r.method != OURS]
        if mine.qini < max(r.qini for r in others) or mine.top_uplift < max(
            r.top_uplift for r in others
        ):
            return False
    return True


def bootstrap_gap(
    ours: np.ndarray,
    other: np.ndarray,
    treated: np.ndarray,
    y: np.ndarray,
    *,
    reps: int = 200,
    seed: int = 7,
) -> tuple[float, float]:
    """95% interval of Qini(ours) - Qini(other) over bootstrap resamples of the held-out half:
    how far apart two methods really are on this much data."""
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(reps):
        i = rng.integers(0, len(y), len(y))
        gaps.append(
            qini_coefficient(ours[i], treated[i], y[i])
            - qini_coefficient(other[i], treated[i], y[i])
        )
    low, high = np.percentile(gaps, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class HillstromEvaluation:
    customers: int
    # Per outcome: the campaign report's arms and uplifts over the no-e-mail arm.
    arms: dict[str, list[ArmStats]]
    uplifts: dict[str, list[Uplift]]
    targeting: list[TargetingRow]
    meta: dict[str, Any]
    # (a) The same test loaded as a campaign and read with ``campaign report`` (purchases).
    campaign: Report | None = None

    def ours(self, outcome: str) -> TargetingRow:
        return next(r for r in self.targeting if r.outcome == outcome and r.method == OURS)

    @property
    def beats_all(self) -> bool:
        return beats_all(self.targeting)


def hillstrom_report(frame: pd.DataFrame, outcome: str) -> tuple[list[ArmStats], list[Uplift]]:
    """The campaign report of the test, with the no-e-mail arm as its control: a response is
    ``outcome``, revenue is spend. The same arithmetic as ``crmbot campaign report``."""
    totals = []
    for arm in HILLSTROM_ARMS:
        rows = frame[frame["segment"] == arm]
        spend = rows["spend"].to_numpy(dtype=float)
        totals.append(
            ArmTotals(
                arm=arm,
                customers=len(rows),
                contacted=0 if arm == HILLSTROM_CONTROL else len(rows),
                responded=int((rows[outcome] > 0).sum()),
                revenue=float(spend.sum()),
                revenue_sq=float((spend**2).sum()),
            )
        )
    return summarise(totals, control_arm=HILLSTROM_CONTROL)


def hillstrom_campaign(frame: pd.DataFrame) -> Report:
    """The test loaded as a sent campaign into a scratch database (its no-e-mail arm as the
    control, each purchase inside the window) and read back with ``campaign report``: a
    response is a purchase (the test's conversion) and revenue is spend."""
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from crm.db import Database
    from crm.services.actor import Actor

    arms = [CONTROL if s == HILLSTROM_CONTROL else s for s in frame["segment"]]
    with tempfile.TemporaryDirectory(prefix="crmbot-eval-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'hillstrom.db'}")
        try:
            db.upgrade()
            with db.transaction() as session:
                campaign_svc.import_experiment(
                    session,
                    name="hillstrom",
                    started_at=datetime(2008, 3, 1, tzinfo=UTC),
                    window_days=14,
                    arms=arms,
                    purchases=frame["spend"].astype(float).tolist(),
                    actor=Actor.system("evaluation"),
                )
            with db.session() as session:
                return campaign_svc.report(session, "hillstrom")
        finally:
            db.dispose()


def evaluate_hillstrom(
    frame: pd.DataFrame | None = None,
    *,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> HillstromEvaluation:
    frame = load_hillstrom() if frame is None else frame
    arms: dict[str, list[ArmStats]] = {}
    uplifts: dict[str, list[Uplift]] = {}
    for outcome in ("visit", "conversion"):
        arms[outcome], uplifts[outcome] = hillstrom_report(frame, outcome)
    say = progress or (lambda _m: None)
    say("loading the test as a campaign into a scratch database")
    campaign = hillstrom_campaign(frame)
    rows, meta = evaluate_targeting(frame, seed=seed, progress=progress)
    return HillstromEvaluation(len(frame), arms, uplifts, rows, meta, campaign)
