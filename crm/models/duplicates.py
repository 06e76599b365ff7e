"""Duplicate customers: pairs people said are not duplicates, and merges that can be undone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import NEVER_REUSE_IDS, sealed_json_column, utc_column, utcnow


# Two customers someone said are different people: never suggested as duplicates again.
# The ids are kept without foreign keys so the answer outlives a merge and its undo.
class DuplicateDismissal(SQLModel, table=True):
    __tablename__ = "duplicate_dismissals"
    __table_args__ = (
        sa.UniqueConstraint("low_id", "high_id", name="uq_duplicate_dismissals_pair"),
    )

    id: int | None = Field(default=None, primary_key=True)
    low_id: int  # the smaller customer id of the pair
    high_id: int
    dismissed_by: str = Field(sa_type=sa.String(200))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


# One merge of a customer into another, with what it moved, so it can be undone.
class CustomerMerge(SQLModel, table=True):
    __tablename__ = "customer_merges"
    __table_args__ = (sa.Index("ix_customer_merges_kept", "kept_id"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    kept_id: int
    merged_id: int  # the id the merged-away customer had, and gets back on undo
    # (the customers as they were: sealed, encrypted at rest when keys are set)
    kept_before: dict[str, Any] | None = Field(default=None, sa_column=sealed_json_column())
    merged_before: dict[str, Any] | None = Field(default=None, sa_column=sealed_json_column())
    # Ids of the records that moved, by kind: contact_points, deals, interactions, ...
    moved: dict[str, Any] | None = Field(default=None, sa_column=sealed_json_column())  # sealed
    merged_by: str = Field(sa_type=sa.String(200))
    merged_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    undone_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    undone_by: str | None = Field(default=None, sa_type=sa.String(200))
