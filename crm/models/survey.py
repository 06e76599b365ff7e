"""Satisfaction surveys: one question, five signed single-use links, one per customer a period."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import NEVER_REUSE_IDS, SealedText, utc_column, utcnow


# One survey sent to a customer; answered once (rating 1-5 and an optional comment).
class Survey(SQLModel, table=True):
    __tablename__ = "surveys"
    __table_args__ = (sa.Index("ix_surveys_customer", "customer_id", "created_at"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    trigger: str = Field(sa_type=sa.String(32))  # support_reply, manual
    thread_key: str | None = Field(default=None, sa_type=sa.String(500))
    email: str | None = Field(default=None, sa_type=SealedText(320))  # sealed
    status: str = Field(default="pending", sa_type=sa.String(16))  # pending, sent, answered, failed
    message_id: str | None = Field(default=None, sa_type=sa.String(500))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    expires_at: datetime = Field(sa_column=utc_column())
    answered_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    rating: int | None = None
    comment: str | None = Field(default=None, sa_type=SealedText())
