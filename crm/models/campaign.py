"""Campaigns: a mailing to an audience with a stored random control group, and opt-outs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import NEVER_REUSE_IDS, SealedText, json_column, utc_column, utcnow

TREATMENT, CONTROL = "treatment", "control"


# One campaign: who it is for, what it says, its holdout and the window responses count in.
class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(200), unique=True)
    # How the audience was chosen: {"segment": ...} | {"customers": file} | {"filter": expr} ...
    audience: dict[str, Any] | None = Field(default=None, sa_column=json_column())
    subject: str = Field(sa_type=sa.String(300))
    template: str = Field(sa_type=sa.Text)  # Jinja2 source of the text body
    holdout: float = Field(default=0.1)
    seed: int = Field(sa_type=sa.BigInteger)
    window_days: int = Field(default=14)
    status: str = Field(default="draft", sa_type=sa.String(16))  # draft, sending, sent
    created_by: str = Field(default="", sa_type=sa.String(200))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    # The start of the response window, for both arms: when the first mail went out.
    started_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


# One customer of a campaign, in the treatment or the control arm (drawn once, stored).
class CampaignMember(SQLModel, table=True):
    __tablename__ = "campaign_members"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "customer_id", name="uq_campaign_members"),
        sa.Index("ix_campaign_members_customer", "customer_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id", ondelete="CASCADE")
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    arm: str = Field(sa_type=sa.String(16))  # treatment, control
    email: str | None = Field(default=None, sa_type=SealedText(320))  # sealed
    status: str = Field(default="pending", sa_type=sa.String(16))  # pending, sent, skipped, failed
    message_id: str | None = Field(default=None, sa_type=sa.String(500))
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    note: str | None = Field(default=None, sa_type=sa.String(500))


# An address that asked for no more campaign mail, kept as its keyed hash (the contact points'
# HMAC, crm.services.keys.contact_digest), never as the address.
class CampaignOptOut(SQLModel, table=True):
    __tablename__ = "campaign_opt_outs"

    digest: str = Field(primary_key=True, sa_type=sa.String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
