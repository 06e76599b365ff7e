"""Interactions: every email, Slack message, call, meeting, note or purchase with a customer."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import (
    MONEY,
    NEVER_REUSE_IDS,
    Channel,
    Direction,
    SealedText,
    enum_type,
    sealed_json_column,
    utc_column,
    utcnow,
)


# Input for recording an interaction.
class InteractionCreate(SQLModel):
    customer_id: int
    deal_id: int | None = None
    channel: Channel
    direction: Direction = Direction.internal
    occurred_at: datetime | None = None
    subject: str | None = None
    body: str = ""
    author: str | None = None
    source: str = "manual"
    external_id: str | None = None
    thread_key: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    meta: dict[str, Any] | None = None


# The table. (source, external_id) is unique so re-delivering the same message is a no-op.
class Interaction(SQLModel, table=True):
    __tablename__ = "interactions"
    __table_args__ = (
        sa.UniqueConstraint("source", "external_id", name="uq_interactions_source_external"),
        sa.Index("ix_interactions_customer_time", "customer_id", "occurred_at"),
        sa.Index("ix_interactions_deal", "deal_id"),
        sa.Index("ix_interactions_thread", "thread_key"),
        sa.Index("ix_interactions_time", "occurred_at"),
        # Live purchases alone, with what the next-product rules read of them: the refresh
        # reads them without scanning every interaction (see crm.analytics.products).
        sa.Index(
            "ix_interactions_purchases",
            "id",
            "customer_id",
            "occurred_at",
            sqlite_where=sa.text("channel = 'purchase' AND deleted_at IS NULL"),
            postgresql_where=sa.text("channel = 'purchase' AND deleted_at IS NULL"),
        ),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    deal_id: int | None = Field(default=None, foreign_key="deals.id", ondelete="SET NULL")
    channel: Channel = Field(sa_type=enum_type(Channel, 16))
    direction: Direction = Field(sa_type=enum_type(Direction, 16))
    occurred_at: datetime = Field(sa_column=utc_column())
    # Subject, body and meta (recipients, quoted text, signature) are sealed: encrypted at
    # rest when keys are set.
    subject: str | None = Field(default=None, sa_type=SealedText(500))
    body: str = Field(default="", sa_type=SealedText())
    author: str | None = Field(default=None, sa_type=SealedText(320))  # "Name <address>"
    source: str = Field(default="manual", sa_type=sa.String(200))
    external_id: str | None = Field(default=None, sa_type=sa.String(500))
    thread_key: str | None = Field(default=None, sa_type=sa.String(500))
    amount: Decimal | None = Field(default=None, sa_type=MONEY, max_digits=18, decimal_places=2)
    currency: str | None = Field(default=None, sa_type=sa.String(3))
    meta: dict[str, Any] | None = Field(default=None, sa_column=sealed_json_column())
    # Whether meta still holds parts of the raw message (what raw-mail retention removes).
    holds_raw_mail: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    deleted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
