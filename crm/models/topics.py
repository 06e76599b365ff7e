"""What customers talk about (see crm.analytics.topics).

``customer_topics`` keeps each customer's running term counts (their most used terms) and
keywords, updated by each refresh from the interactions added since the last; ``topic_terms``
counts the customers using each term (the IDF of the keywords). Per run, ``segment_topics``
holds each segment's topics and ``segment_terms`` the terms of the segment's new interactions
in that run, so digests can compare one period's terms with the last. The per-run tables are
snapshots written in bulk, without foreign keys (see crm.models.analytics).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import json_column, sealed_json_column, utc_column, utcnow


class CustomerTopics(SQLModel, table=True):
    __tablename__ = "customer_topics"

    customer_id: int = Field(primary_key=True, foreign_key="customers.id", ondelete="CASCADE")
    # Sealed: the words of the customer's own conversations.
    counts: dict[str, int] | None = Field(default=None, sa_column=sealed_json_column())
    keywords: list[str] | None = Field(default=None, sa_column=sealed_json_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class TopicTerm(SQLModel, table=True):
    __tablename__ = "topic_terms"

    term: str = Field(primary_key=True, sa_type=sa.String(200))
    customers: int = Field(default=0)


class SegmentTopic(SQLModel, table=True):
    __tablename__ = "segment_topics"
    __table_args__ = (sa.Index("ix_segment_topics_run_segment", "run_id", "segment"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int
    segment: str = Field(sa_type=sa.String(40))
    rank: int
    label: str = Field(sa_type=sa.String(400))
    terms: list[str] | None = Field(default=None, sa_column=json_column())
    weight: float
    customers: int


class SegmentTerm(SQLModel, table=True):
    __tablename__ = "segment_terms"
    __table_args__ = (sa.Index("ix_segment_terms_run_segment", "run_id", "segment"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int
    segment: str = Field(sa_type=sa.String(40))
    term: str = Field(sa_type=sa.String(200))
    count: int
