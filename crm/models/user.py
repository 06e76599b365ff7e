"""Users of the CRM (sales reps, managers...), usually known by their Slack id."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import NEVER_REUSE_IDS, Role, enum_type, utc_column, utcnow


# Fields shared by every User shape.
class UserBase(SQLModel):
    name: str = Field(sa_type=sa.String(200))
    email: str | None = Field(default=None, sa_type=sa.String(320))
    slack_user_id: str | None = Field(default=None, sa_type=sa.String(32))
    role: Role = Field(default=Role.rep, sa_type=enum_type(Role, 16))
    timezone: str = Field(default="UTC", sa_type=sa.String(64))


# Input for creating a user.
class UserCreate(UserBase):
    pass


# The table.
class User(UserBase, table=True):
    __tablename__ = "users"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    email: str | None = Field(default=None, sa_type=sa.String(320), unique=True)
    slack_user_id: str | None = Field(default=None, sa_type=sa.String(32), unique=True)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
