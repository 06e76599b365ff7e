"""The audit trail: who changed what, when, with the before and after state.

The events form a hash chain: each carries ``seq`` (its place in the chain), ``digest`` (a
SHA-256 of its content) and ``chain`` (a SHA-256 over the previous event's ``chain``, its own
``seq`` and ``digest``). Editing, inserting or deleting an event breaks the chain from that
point on; ``audit_chain`` holds the newest link, so deleting the last events shows too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import sealed_json_column, utc_column, utcnow


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_entity", "entity", "entity_id"),
        sa.Index("ix_audit_events_at", "at"),
        sa.UniqueConstraint("seq", name="uq_audit_events_seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    actor: str = Field(sa_type=sa.String(200))
    action: str = Field(sa_type=sa.String(64))
    entity: str = Field(sa_type=sa.String(64))
    entity_id: str | None = Field(default=None, sa_type=sa.String(64))
    # The states are sealed (encrypted at rest when keys are set): they hold personal data.
    before: dict[str, Any] | None = Field(default=None, sa_column=sealed_json_column())
    after: dict[str, Any] | None = Field(default=None, sa_column=sealed_json_column())
    seq: int | None = Field(default=None, sa_type=sa.BigInteger)
    digest: str | None = Field(default=None, sa_type=sa.String(64))
    chain: str | None = Field(default=None, sa_type=sa.String(64))


# The newest link of the audit chain (one row, id 1): locked by every writer of an event, so
# that events join the chain one at a time, on every replica.
class AuditChainHead(SQLModel, table=True):
    __tablename__ = "audit_chain"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_type=sa.BigInteger)
    chain: str = Field(default="", sa_type=sa.String(64))
