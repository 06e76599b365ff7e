"""Deals and their stage history."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import MONEY, NEVER_REUSE_IDS, DealStatus, enum_type, utc_column, utcnow


# Fields shared by every Deal shape.
class DealBase(SQLModel):
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    title: str = Field(sa_type=sa.String(200))
    amount: Decimal = Field(default=Decimal("0"), sa_type=MONEY, max_digits=18, decimal_places=2)
    currency: str = Field(default="USD", sa_type=sa.String(3))
    stage: str = Field(sa_type=sa.String(40))
    owner_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    expected_close_date: date | None = None


# Input for opening a deal (stage defaults to the first configured stage).
class DealCreate(SQLModel):
    customer_id: int
    title: str
    amount: Decimal = Decimal("0")
    currency: str | None = None
    stage: str | None = None
    owner_id: int | None = None
    expected_close_date: date | None = None


# The table.
class Deal(DealBase, table=True):
    __tablename__ = "deals"
    __table_args__ = (
        sa.Index("ix_deals_customer", "customer_id"),
        sa.Index("ix_deals_owner_status", "owner_id", "status"),
        sa.Index("ix_deals_status_stage", "status", "stage"),
        sa.UniqueConstraint("external_id", name="uq_deals_external_id"),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    # The deal's id in another system (imports); with it, a re-import finds the deal again.
    external_id: str | None = Field(default=None, sa_type=sa.String(200))
    status: DealStatus = Field(default=DealStatus.open, sa_type=enum_type(DealStatus, 8))
    lost_reason: str | None = Field(default=None, sa_type=sa.String(500))
    stage_entered_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    closed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


# One move of a deal from a stage to another (from_stage is None when the deal was opened).
class DealStageChange(SQLModel, table=True):
    __tablename__ = "deal_stage_changes"
    __table_args__ = (sa.Index("ix_deal_stage_changes_deal", "deal_id", "changed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    deal_id: int = Field(foreign_key="deals.id", ondelete="CASCADE")
    from_stage: str | None = Field(default=None, sa_type=sa.String(40))
    to_stage: str = Field(sa_type=sa.String(40))
    changed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    changed_by: str = Field(sa_type=sa.String(200))
