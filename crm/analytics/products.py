"""Rules and next-product suggestions from the store's purchase lines (see ``baskets``).

A basket here is a customer's purchase history up to the cutoff: "customers who bought A also
buy B". Rules are mined at product level (SKUs) and at category level.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlmodel import Session

from crm.analytics.baskets import RuleSet, Suggestion, Thresholds, basket_matrix, mine, suggest
from crm.config import Settings
from crm.models import Interaction, Product, ProductSuggestion, PurchaseLine
from crm.services import bulk


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


def _lines(
    session: Session, level: Level, cutoff: datetime | None
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """(customer ids, item keys, item key -> label) of every live purchase line."""
    key = Product.sku if level is Level.product else Product.category
    stmt = (
        sa.select(Interaction.customer_id, key, Product.name)  # type: ignore[call-overload]
        .join(PurchaseLine, PurchaseLine.interaction_id == Interaction.id)
        .join(Product, Product.id == PurchaseLine.product_id)
        .where(Interaction.deleted_at.is_(None), key.is_not(None))  # type: ignore[union-attr, attr-defined]
    )
    if cutoff is not None:
        stmt = stmt.where(Interaction.occurred_at < cutoff)
    customers: list[int] = []
    keys: list[str] = []
    labels: dict[str, str] = {}
    for cid, item, name in session.execute(stmt):
        customers.append(cid)
        keys.append(item)
        labels.setdefault(item, name if level is Level.product else item)
    return np.asarray(customers, dtype=np.int64), np.asarray(keys, dtype=object), labels


def mine_store(
    session: Session,
    settings: Settings,
    *,
    level: Level = Level.product,
    cutoff: datetime | None = None,
) -> tuple[RuleSet, dict[str, str]]:
    """The rules over the thresholds in settings, and each item's label (a product's name)."""
    customers, keys, labels = _lines(session, level, cutoff)
    matrix, _, items = basket_matrix(customers, keys)
    return mine(matrix, items, thresholds(settings)), labels


def suggestions(
    session: Session,
    settings: Settings,
    *,
    cutoff: datetime | None = None,
    top: int = 3,
) -> tuple[dict[int, list[Suggestion]], dict[str, str]]:
    """Customer id -> the ``top`` products they have not bought, best first, with the reason."""
    customers, keys, labels = _lines(session, Level.product, cutoff)
    matrix, ids, items = basket_matrix(customers, keys)
    rules = mine(matrix, items, thresholds(settings))
    picks = suggest(matrix, rules, top=top)
    return {int(str(cid)): p for cid, p in zip(ids, picks, strict=True) if p}, labels


logger = logging.getLogger(__name__)


def compute_for_run(
    session: Session, settings: Settings, cutoff: datetime
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows for ``product_suggestions`` (all but run_id) and a summary for the run's meta.

    A refresh never fails because of this: on an error the run gets no suggestions and the
    summary says why."""
    started = time.perf_counter()
    try:
        picks, labels = suggestions(session, settings, cutoff=cutoff)
        ids = bulk.product_ids(session, list({s.item for p in picks.values() for s in p}))
    except Exception as exc:  # noqa: BLE001 (a refresh stores its other results all the same)
        logger.exception("next-product suggestions failed")
        return [], {"error": repr(exc)[:300]}
    rows = [
        {
            "customer_id": cid,
            "product_id": ids[s.item],
            "rank": rank,
            "score": s.score,
            "reason": s.reason(labels),
        }
        for cid, picks_ in picks.items()
        for rank, s in enumerate(picks_, start=1)
    ]
    return rows, {
        "customers": len(picks),
        "suggestions": len(rows),
        "seconds": round(time.perf_counter() - started, 3),
    }


def record_for_run(session: Session, run_id: int, rows: list[dict[str, Any]]) -> None:
    """Store a run's suggestions in the open transaction (the run's own audit event covers them)."""
    if not rows:
        return
    columns = ("run_id", "customer_id", "product_id", "rank", "score", "reason")
    bulk.write_rows(
        session,
        ProductSuggestion.__table__,  # type: ignore[attr-defined]
        columns,
        [
            (run_id, r["customer_id"], r["product_id"], r["rank"], r["score"], r["reason"])
            for r in rows
        ],
    )
