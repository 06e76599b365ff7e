"""Rules and next-product suggestions from the store's purchase lines (see ``baskets``).

A basket here is a customer's purchase history up to the cutoff: "customers who bought A also
buy B". Rules are mined at product level (SKUs) and at category level.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import scipy.sparse as sp
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlmodel import Session

from crm.analytics.baskets import (
    RuleSet,
    Suggestion,
    Thresholds,
    mine,
    pick,
    reason_text,
    suggest,
)
from crm.analytics.columns import Column, read_columns, time_literal
from crm.config import Settings
from crm.models import Product


class Level(StrEnum):
    product = "product"
    category = "category"


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        min_support=settings.basket_min_support,
        min_confidence=settings.basket_min_confidence,
        min_lift=settings.basket_min_lift,
        min_count=settings.basket_min_count,
        max_pairs=settings.basket_max_pairs,
        min_improvement=settings.basket_min_improvement,
    )


@dataclass
class Lines:
    """Every live purchase line as arrays: the buyer and the item (a code into ``keys``), plus
    each key's label (a product's name, or the category itself) and, at product level, each
    key's product id."""

    customers: NDArray[np.int64]
    items: NDArray[np.int64]
    keys: list[str]
    labels: dict[str, str]
    product_ids: NDArray[np.int64]

    def matrix(self) -> tuple[sp.csr_matrix, NDArray[np.int64]]:
        """The customers x items 0/1 matrix and each row's customer id."""
        ids, rows = np.unique(self.customers, return_inverse=True)
        matrix = sp.csr_matrix(
            (np.ones(len(rows)), (rows, self.items)), shape=(len(ids), len(self.keys))
        )
        matrix.data[:] = 1.0  # an item bought twice still counts once
        return matrix, ids.astype(np.int64)


def _lines(session: Session, level: Level, cutoff: datetime | None) -> Lines:
    """The purchase lines of undeleted purchases before ``cutoff``, read as packed columns (no
    Python object per line; see ``crm.analytics.columns``) and joined in numpy."""
    dialect = session.get_bind().dialect.name
    when = "" if cutoff is None else f" AND occurred_at < {time_literal(cutoff, dialect)}"
    purchases = read_columns(
        session,
        "interactions",
        [Column("id", "int"), Column("customer_id", "int")],
        f"channel = 'purchase' AND deleted_at IS NULL{when}",
    )
    lines = read_columns(
        session, "purchase_lines", [Column("interaction_id", "int"), Column("product_id", "int")]
    )
    order = np.argsort(purchases["id"], kind="stable")
    purchase_ids, buyers = purchases["id"][order], purchases["customer_id"][order]
    at = np.minimum(np.searchsorted(purchase_ids, lines["interaction_id"]), len(purchase_ids) - 1)
    live = purchase_ids[at] == lines["interaction_id"] if len(purchase_ids) else np.zeros(0, bool)
    customers, product = buyers[at[live]], lines["product_id"][live]
    catalogue = session.execute(sa.select(Product.id, Product.sku, Product.name, Product.category))  # type: ignore[call-overload]
    known = {pid: (sku, name, category) for pid, sku, name, category in catalogue}
    used = np.unique(product)
    if level is Level.product:
        keys = [known[int(p)][0] for p in used]
        labels = {known[int(p)][0]: known[int(p)][1] for p in used}
        codes = np.searchsorted(used, product)
        return Lines(customers, codes.astype(np.int64), keys, labels, used.astype(np.int64))
    category_of = [known[int(p)][2] for p in used]
    keys = sorted({c for c in category_of if c})
    code_of = {c: n for n, c in enumerate(keys)}
    by_product = np.array([code_of.get(c, -1) if c else -1 for c in category_of], dtype=np.int64)
    codes = by_product[np.searchsorted(used, product)] if len(used) else np.zeros(0, np.int64)
    has = codes >= 0
    return Lines(
        customers[has], codes[has], keys, {k: k for k in keys}, np.zeros(0, dtype=np.int64)
    )


def mine_store(
    session: Session,
    settings: Settings,
    *,
    level: Level = Level.product,
    cutoff: datetime | None = None,
) -> tuple[RuleSet, dict[str, str]]:
    """The rules over the thresholds in settings, and each item's label (a product's name)."""
    lines = _lines(session, level, cutoff)
    matrix, _ = lines.matrix()
    return mine(matrix, lines.keys, thresholds(settings)), lines.labels


def suggestions(
    session: Session,
    settings: Settings,
    *,
    cutoff: datetime | None = None,
    top: int = 3,
) -> tuple[dict[int, list[Suggestion]], dict[str, str]]:
    """Customer id -> the ``top`` products they have not bought, best first, with the reason."""
    lines = _lines(session, Level.product, cutoff)
    matrix, ids = lines.matrix()
    rules = mine(matrix, lines.keys, thresholds(settings))
    picks = suggest(matrix, rules, top=top)
    return {int(cid): p for cid, p in zip(ids, picks, strict=True) if p}, lines.labels


logger = logging.getLogger(__name__)


@dataclass
class SuggestionRows:
    """A run's suggestions as columns, ready to store (see ``refresh.suggestion_part``)."""

    customer_id: NDArray[np.int64]
    product_id: NDArray[np.int64]
    rank: NDArray[np.int64]
    score: NDArray[np.float64]
    reason: list[str]

    def __len__(self) -> int:
        return len(self.reason)


def compute_for_run(
    session: Session, settings: Settings, cutoff: datetime, *, top: int = 3
) -> tuple[SuggestionRows | None, dict[str, Any]]:
    """The run's suggestions (None when there are none) and a summary for the run's meta.

    A refresh never fails because of this: on an error the run gets no suggestions and the
    summary says why."""
    started = time.perf_counter()
    try:
        lines = _lines(session, Level.product, cutoff)
        matrix, ids = lines.matrix()
        rules = mine(matrix, lines.keys, thresholds(settings))
        picks = pick(matrix, rules, top=top)
        names = [lines.labels[k] for k in lines.keys]
        # One text per rule, shared by every suggestion it makes (millions of suggestions
        # come from a few thousand rules: a string each would hold hundreds of MB).
        texts: dict[tuple[int, int, int, float, float], str] = {}
        reasons = [
            texts.get(key)
            or texts.setdefault(
                key,
                reason_text(names[key[0]], names[key[1]], None if key[2] < 0 else names[key[2]],
                            key[3], key[4]),
            )
            for key in zip(
                picks.item.tolist(),
                picks.because.tolist(),
                picks.because2.tolist(),
                picks.confidence.tolist(),
                picks.lift.tolist(),
                strict=True,
            )
        ]  # fmt: skip
        rows = SuggestionRows(
            ids[picks.row], lines.product_ids[picks.item], picks.rank, picks.score, reasons
        )
    except Exception as exc:  # noqa: BLE001 (a refresh stores its other results all the same)
        logger.exception("next-product suggestions failed")
        return None, {"error": repr(exc)[:300]}
    return rows if len(rows) else None, {
        "customers": int(len(np.unique(rows.customer_id))),
        "suggestions": len(rows),
        "seconds": round(time.perf_counter() - started, 3),
    }
