"""Segments: RFM quintile scores with the standard names, and k-means clusters named in words.

RFM is scored among customers who have bought (a purchase or a won deal); customers who
never bought are "Prospect" (scores 0) because a quintile of nothing means nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import StandardScaler

logger = logging.getLogger(__name__)

PROSPECT = "Prospect"

# Standard RFM segments on the (recency score, frequency score) grid, rows R=5..1, columns F=1..5.
_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalist", "Potential Loyalist", "Loyal", "Loyal"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
}
SEGMENTS = tuple(dict.fromkeys(name for row in _GRID.values() for name in row))

CLUSTER_FEATURES = ("recency_days", "frequency", "monetary", "tenure_days", "interactions_90")


def quintile_scores(values: pd.Series, *, higher_is_better: bool = True) -> pd.Series:
    """Scores 1-5 by quintile of rank. Equal values share their average rank, so ties always get
    the same score whatever the row order; recency passes ``higher_is_better=False``."""
    n = len(values)
    if n == 0:
        return pd.Series([], dtype="int64", index=values.index)
    ranks = values.rank(method="average", ascending=higher_is_better)
    scores = np.ceil(ranks.to_numpy() * 5 / n).clip(1, 5).astype("int64")
    return pd.Series(scores, index=values.index)


def segment_name(recency: int, frequency: int) -> str:
    return _GRID[recency][frequency - 1]


def rfm_segments(features: pd.DataFrame) -> pd.DataFrame:
    """recency/frequency/monetary scores and the named segment for every customer in ``features``.

    Needs columns recency_days (NaN when never bought), frequency and monetary.
    """
    out = pd.DataFrame(index=features.index)
    out["recency_score"] = 0
    out["frequency_score"] = 0
    out["monetary_score"] = 0
    out["rfm_segment"] = PROSPECT
    buyers = features.index[(features["frequency"] > 0) | (features["monetary"] > 0)]
    if len(buyers):
        b = features.loc[buyers]
        # Won deals without a dated purchase: count as bought at tenure start (the oldest we know).
        recency = b["recency_days"].fillna(b.get("tenure_days", b["recency_days"]))
        r = quintile_scores(recency.fillna(recency.max()), higher_is_better=False)
        f = quintile_scores(b["frequency"])
        m = quintile_scores(b["monetary"])
        out.loc[buyers, "recency_score"] = r
        out.loc[buyers, "frequency_score"] = f
        out.loc[buyers, "monetary_score"] = m
        grid = np.array([list(_GRID[k]) for k in (1, 2, 3, 4, 5)], dtype=object)
        out.loc[buyers, "rfm_segment"] = grid[r.to_numpy() - 1, f.to_numpy() - 1]
    return out


@dataclass
class Clustering:
    labels: pd.Series
    names: dict[int, str]
    k: int
    silhouette: dict[int, float]
    centroids: pd.DataFrame
    stability_ari: float | None = None
    notes: list[str] = field(default_factory=list)


def cluster_matrix(features: pd.DataFrame) -> np.ndarray:
    """log1p of the clustering features (skewed counts and money), then standardised."""
    cols = [c for c in CLUSTER_FEATURES if c in features.columns]
    raw = features[cols].astype(float)
    # Never bought: as lapsed as their whole tenure.
    raw["recency_days"] = raw["recency_days"].fillna(raw.get("tenure_days", 0))
    x = np.log1p(raw.fillna(0).clip(lower=0).to_numpy())
    return StandardScaler().fit_transform(x)


def _fit(x: np.ndarray, k: int, seed: int, fit_rows: int) -> KMeans:
    rng = np.random.default_rng(seed)
    sample = x if len(x) <= fit_rows else x[rng.choice(len(x), fit_rows, replace=False)]
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit(sample)


def choose_k(
    x: np.ndarray, k_range: tuple[int, int], *, seed: int, sample: int, fit_rows: int
) -> dict[int, float]:
    """Silhouette of each k on one fixed sample (silhouette costs n^2, so never the whole set)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), min(sample, len(x)), replace=False)
    scores: dict[int, float] = {}
    for k in range(k_range[0], k_range[1] + 1):
        if k >= len(idx):
            break
        # Fitted on the silhouette sample itself: choosing k needs the shape, not every row.
        labels = _fit(x[idx], k, seed, fit_rows).labels_
        if len(set(labels)) < 2:
            continue
        scores[k] = float(silhouette_score(x[idx], labels))
    return scores


def name_clusters(features: pd.DataFrame, labels: np.ndarray) -> dict[int, str]:
    """Name each cluster from its medians against everyone's: how recent, how often, how much."""
    f = features.assign(_c=labels)
    overall = f[["recency_days", "frequency", "monetary"]].median()
    names: dict[int, str] = {}
    for cluster, group in f.groupby("_c"):
        med = group[["recency_days", "frequency", "monetary", "tenure_days"]].median()
        if pd.isna(med["recency_days"]) or group["frequency"].gt(0).mean() < 0.5:
            base = (
                "new contacts, no purchases yet"
                if med["tenure_days"] < 90
                else "contacts who have not bought"
            )
            names[int(cluster)] = base[0].upper() + base[1:]
            continue
        if med["recency_days"] <= 0.5 * overall["recency_days"]:
            recency = "recent"
        elif med["recency_days"] >= 1.5 * overall["recency_days"]:
            recency = "lapsed"
        else:
            recency = "cooling"
        if med["frequency"] <= 1:
            frequency = "one-time buyers"
        elif med["frequency"] >= 2 * max(overall["frequency"], 1):
            frequency = "frequent buyers"
        else:
            frequency = "occasional buyers"
        if med["monetary"] >= 2 * overall["monetary"]:
            spend = "high spend"
        elif med["monetary"] <= 0.5 * overall["monetary"]:
            spend = "low spend"
        else:
            spend = "mid spend"
        names[int(cluster)] = f"{recency.capitalize()} {frequency}, {spend}"
    # Two clusters can read alike; tell them apart by size of spend so each name is unique.
    seen: dict[str, list[int]] = {}
    for cluster, name in names.items():
        seen.setdefault(name, []).append(cluster)
    for name, clusters in seen.items():
        if len(clusters) > 1:
            medians = {
                c: float(np.median(features["monetary"].to_numpy()[labels == c])) for c in clusters
            }
            for rank, c in enumerate(sorted(clusters, key=lambda c: -medians[c])):
                names[c] = (
                    f"{name} ({'higher' if rank == 0 else 'lower' if rank == len(clusters) - 1 else 'middle'} of {len(clusters)})"
                )
    return names


def kmeans_segments(
    features: pd.DataFrame,
    *,
    k_range: tuple[int, int] = (3, 6),
    seed: int = 7,
    silhouette_sample: int = 4_000,
    fit_rows: int = 100_000,
    stability_seeds: int = 0,
) -> Clustering:
    """k-means on log-scaled features, k by silhouette, clusters named in words; optional ARI stability."""
    if len(features) < k_range[0] + 1:
        labels = pd.Series(0, index=features.index)
        return Clustering(
            labels, {0: "Everyone"}, 1, {}, pd.DataFrame(), notes=["too few customers to cluster"]
        )
    x = cluster_matrix(features)
    scores = choose_k(x, k_range, seed=seed, sample=silhouette_sample, fit_rows=fit_rows)
    k = max(scores, key=lambda kk: (scores[kk], -kk)) if scores else k_range[0]
    model = _fit(x, k, seed, fit_rows)
    labels = _canonical(model.predict(x), features)
    clustering = Clustering(
        labels=pd.Series(labels, index=features.index),
        names=name_clusters(features, labels),
        k=k,
        silhouette=scores,
        centroids=pd.DataFrame(
            model.cluster_centers_, columns=[c for c in CLUSTER_FEATURES if c in features.columns]
        ),
    )
    if stability_seeds > 1:
        clustering.stability_ari = stability(x, k, seeds=range(stability_seeds), fit_rows=fit_rows)
    return clustering


def _canonical(labels: np.ndarray, features: pd.DataFrame) -> np.ndarray:
    """Renumber clusters by median spend (0 = highest) so numbers mean the same across runs."""
    spend = pd.Series(features["monetary"].to_numpy()).groupby(labels).median()
    order = {old: new for new, old in enumerate(spend.sort_values(ascending=False).index)}
    return np.vectorize(order.get)(labels) if len(labels) else labels


def stability(x: np.ndarray, k: int, *, seeds: range, fit_rows: int = 200_000) -> float:
    """Smallest adjusted Rand index between the clusterings of every pair of seeds (1.0 = identical)."""
    runs = [_fit(x, k, seed, fit_rows).predict(x) for seed in seeds]
    return float(min(adjusted_rand_score(a, b) for a, b in combinations(runs, 2)))
