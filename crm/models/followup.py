"""Follow-ups: a promise to get back to a customer by a given time."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import (
    NEVER_REUSE_IDS,
    FollowUpKind,
    FollowUpStatus,
    SealedText,
    enum_type,
    utc_column,
    utcnow,
)


# The table. due_at always holds the next time it is due (a snooze moves it).
class FollowUp(SQLModel, table=True):
    __tablename__ = "follow_ups"
    __table_args__ = (
        sa.Index("ix_follow_ups_owner_status_due", "owner_id", "status", "due_at"),
        sa.Index("ix_follow_ups_customer", "customer_id"),
        sa.Index("ix_follow_ups_deal", "deal_id"),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    deal_id: int | None = Field(default=None, foreign_key="deals.id", ondelete="SET NULL")
    owner_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    due_at: datetime = Field(sa_column=utc_column())
    note: str = Field(default="", sa_type=SealedText(2000))
    kind: FollowUpKind = Field(
        default=FollowUpKind.sales,
        sa_type=enum_type(FollowUpKind, 16),
        sa_column_kwargs={"server_default": FollowUpKind.sales.value},
    )
    status: FollowUpStatus = Field(
        default=FollowUpStatus.open, sa_type=enum_type(FollowUpStatus, 16)
    )
    completed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
