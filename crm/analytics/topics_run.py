"""The topics step of a refresh (see crm.analytics.topics), incremental.

Each refresh reads the interactions with text added since the newest one the last run read
(its ``topics.through_id`` in the run's meta), at most ``CRM_TOPICS_BATCH`` of them, oldest
first, so a store of millions of messages is taken in over a few nights and each night reads
only what is new. Their terms are added to each customer's running counts; keywords are found
again for the customers whose counts changed; each segment's topics come from its customers who
have new text; the new terms per segment are kept with the run for the digests' "rising" list.

A refresh never fails because of this step: on an error the run stores no topics and its meta
says why.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm.analytics import topics
from crm.config import Settings
from crm.models import (
    AnalyticsRun,
    Customer,
    CustomerTopics,
    Interaction,
    SegmentTerm,
    SegmentTopic,
    TopicTerm,
)
from crm.models.base import utcnow
from crm.services import bulk

logger = logging.getLogger(__name__)

TEXT_CHANNELS = ("email", "slack", "note", "call", "meeting")
SEGMENT_TERMS = 50  # terms kept per segment and run
TOPIC_DOCUMENTS = 5_000  # customers a segment's topics are found from, at most (a seeded sample)
CHUNK = 5_000
NO_SEGMENT = "(no segment)"


@dataclass
class TopicResults:
    """What the step found, ready to store with the run."""

    through_id: int
    customers: dict[int, tuple[dict[str, int], list[str]]] = field(default_factory=dict)
    df_delta: Counter[str] = field(default_factory=Counter)
    segment_topics: list[tuple[str, int, topics.Topic]] = field(default_factory=list)
    segment_terms: list[tuple[str, str, int]] = field(default_factory=list)


def watermark(session: Session) -> int:
    """The newest interaction id the topics step has read (0: none yet)."""
    metas = session.exec(
        select(AnalyticsRun.meta)
        .where(col(AnalyticsRun.status) == "done")
        .order_by(col(AnalyticsRun.id).desc())
        .limit(50)
    )
    for meta in metas:
        through = (meta or {}).get("topics", {}).get("through_id")
        if isinstance(through, int):
            return through
    return 0


def _new_texts(
    session: Session, after: int, limit: int
) -> tuple[list[topics.Text], dict[int, list[str]], int]:
    """(texts, customer id -> the words of their name, the newest id read)."""
    stmt = (
        sa.select(Interaction.id, Interaction.customer_id, Interaction.subject, Interaction.body)  # type: ignore[call-overload]
        .where(
            col(Interaction.id) > after,
            col(Interaction.deleted_at).is_(None),
            col(Interaction.channel).in_(TEXT_CHANNELS),
        )
        .order_by(col(Interaction.id))
        .limit(limit)
    )
    texts: list[topics.Text] = []
    through = after
    for iid, cid, subject, body in session.execute(stmt):
        through = max(through, int(iid))
        text = " ".join(t for t in (subject, body) if t)
        if text.strip():
            texts.append(topics.Text(int(cid), text))
    ids = sorted({t.customer_id for t in texts})
    names: dict[int, list[str]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for cid, name in session.execute(
            sa.select(Customer.id, Customer.name).where(col(Customer.id).in_(chunk))  # type: ignore[call-overload]
        ):
            names[int(cid)] = topics.words(name or "")
    return texts, names, through


def _stored(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for cid, counts in session.execute(
            sa.select(CustomerTopics.customer_id, CustomerTopics.counts).where(  # type: ignore[call-overload]
                col(CustomerTopics.customer_id).in_(chunk)
            )
        ):
            found[int(cid)] = dict(counts or {})
    return found


def _document_counts(session: Session, terms: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    ordered = sorted(terms)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        for term, n in session.execute(
            sa.select(TopicTerm.term, TopicTerm.customers).where(col(TopicTerm.term).in_(chunk))  # type: ignore[call-overload]
        ):
            found[str(term)] = int(n)
    return found


def compute(
    session: Session, settings: Settings, segments: pd.Series | Callable[[], pd.Series]
) -> tuple[TopicResults | None, dict[str, Any]]:
    """The step's results (None when there is nothing new) and a summary for the run's meta.
    ``segments``: customer id -> segment name, from this run, or what gives them when called
    (a refresh reads and counts the new texts while it is still segmenting)."""
    started = time.perf_counter()
    try:
        after = watermark(session)
        texts, names, through = _new_texts(session, after, settings.topics_batch)
        summary: dict[str, Any] = {"through_id": through, "interactions": 0, "customers": 0}
        if not texts:
            summary["seconds"] = round(time.perf_counter() - started, 3)
            return (TopicResults(through) if through > after else None), summary
        new = topics.extract(
            texts,
            known_terms=lambda words: set(_document_counts(session, words)),
            own_names=names,
        )
        ids = sorted(new)
        old = _stored(session, ids)
        results = TopicResults(through)
        merged: dict[int, dict[str, int]] = {}
        for cid in ids:
            before = old.get(cid, {})
            after_counts = topics.merge(before, new[cid])
            merged[cid] = after_counts
            for term in after_counts.keys() - before.keys():
                results.df_delta[term] += 1
            for term in before.keys() - after_counts.keys():
                results.df_delta[term] -= 1
        documents = int(
            session.execute(sa.select(sa.func.count()).select_from(CustomerTopics)).scalar_one()
        )
        documents += sum(1 for cid in ids if cid not in old)
        df = _document_counts(session, {t for counts in merged.values() for t in counts})
        for term, delta in results.df_delta.items():
            df[term] = max(0, df.get(term, 0) + delta)
        for cid in ids:
            results.customers[cid] = (merged[cid], topics.keywords(merged[cid], df, documents))
        named = segments() if callable(segments) else segments
        _segments(results, new, merged, named, settings.analytics_seed)
        summary.update(
            interactions=len(texts),
            customers=len(ids),
            seconds=round(time.perf_counter() - started, 3),
        )
        return results, summary
    except Exception as exc:  # noqa: BLE001 (a refresh stores its other results all the same)
        logger.exception("topics failed")
        return None, {"error": repr(exc)[:300]}


def _segments(
    results: TopicResults,
    new: dict[int, Counter[str]],
    merged: dict[int, dict[str, int]],
    segments: pd.Series,
    seed: int,
) -> None:
    by_segment: dict[str, list[int]] = {}
    for cid in new:
        name = segments.get(cid, NO_SEGMENT)
        by_segment.setdefault(str(name) if isinstance(name, str) else NO_SEGMENT, []).append(cid)
    rng = np.random.default_rng(seed)
    for segment, ids in sorted(by_segment.items()):
        terms: Counter[str] = Counter()
        for cid in ids:
            terms.update(new[cid])
        for term, count in sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))[:SEGMENT_TERMS]:
            results.segment_terms.append((segment, term, int(count)))
        chosen = (
            ids
            if len(ids) <= TOPIC_DOCUMENTS
            else list(rng.choice(ids, size=TOPIC_DOCUMENTS, replace=False))
        )
        for rank, topic in enumerate(topics.topics([merged[c] for c in chosen], seed=seed), 1):
            results.segment_topics.append((segment, rank, topic))


def record(session: Session, run_id: int, results: TopicResults | None) -> None:
    """Store the step's results in the run's open transaction (its audit event covers them)."""
    if results is None:
        return
    now = utcnow()
    ids = sorted(results.customers)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        session.execute(sa.delete(CustomerTopics).where(col(CustomerTopics.customer_id).in_(chunk)))
    _write(
        session,
        CustomerTopics,
        ("customer_id", "counts", "keywords", "updated_at"),
        [(cid, *results.customers[cid], now) for cid in ids],
    )
    terms = sorted(t for t, d in results.df_delta.items() if d)
    current = _document_counts(session, set(terms))
    for start in range(0, len(terms), CHUNK):
        chunk = terms[start : start + CHUNK]
        session.execute(sa.delete(TopicTerm).where(col(TopicTerm.term).in_(chunk)))
    rows = [(t, current.get(t, 0) + results.df_delta[t]) for t in terms]
    _write(session, TopicTerm, ("term", "customers"), [(t, n) for t, n in rows if n > 0])
    _write(
        session,
        SegmentTerm,
        ("run_id", "segment", "term", "count"),
        [(run_id, s, t, c) for s, t, c in results.segment_terms],
    )
    _write(
        session,
        SegmentTopic,
        ("run_id", "segment", "rank", "label", "terms", "weight", "customers"),
        [
            (run_id, s, rank, t.label[:400], t.terms, round(t.weight, 4), t.customers)
            for s, rank, t in results.segment_topics
        ],
    )


def _write(
    session: Session, model: Any, names: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Rows in the database's fastest loader (``crm.services.bulk.write_rows``), each value in
    the form its column stores (JSON as text, times as the column type writes them, sealed
    columns encrypted when keys are set)."""
    if not rows:
        return
    table = model.__table__
    dialect = session.get_bind().dialect.name
    convert = [bulk.converter(table.c[name], dialect) for name in names]
    bulk.write_rows(
        session,
        table,
        names,
        (
            tuple(v if f is None else f(v) for f, v in zip(convert, row, strict=True))
            for row in rows
        ),
    )
