"""Per-user digest preferences: anyone can opt out of any digest on any channel."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import utc_column, utcnow


# One opt-out: (user, digest kind, channel). No row means the user gets that digest.
class DigestOptOut(SQLModel, table=True):
    __tablename__ = "digest_opt_outs"
    __table_args__ = (sa.UniqueConstraint("user_id", "kind", "channel", name="uq_digest_opt_outs"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    kind: str = Field(sa_type=sa.String(32))  # churn, followups, segments
    channel: str = Field(sa_type=sa.String(16))  # email, slack
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
