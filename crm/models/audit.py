"""The audit trail: who changed what, when, with the before and after state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import json_column, utc_column, utcnow


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_entity", "entity", "entity_id"),
        sa.Index("ix_audit_events_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    actor: str = Field(sa_type=sa.String(200))
    action: str = Field(sa_type=sa.String(64))
    entity: str = Field(sa_type=sa.String(64))
    entity_id: str | None = Field(default=None, sa_type=sa.String(64))
    before: dict[str, Any] | None = Field(default=None, sa_column=json_column())
    after: dict[str, Any] | None = Field(default=None, sa_column=json_column())
