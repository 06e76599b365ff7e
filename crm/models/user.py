"""Users of the CRM (sales reps, managers...), usually known by their Slack id."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import Role, utc_column, utcnow


# Fields shared by every User shape.
class UserBase(SQLModel):
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320)
    slack_user_id: str | None = Field(default=None, max_length=32)
    role: Role = Field(default=Role.rep, sa_type=sa.String(16))
    timezone: str = Field(default="UTC", max_length=64)


# Input for creating a user.
class UserCreate(UserBase):
    pass


# The table.
class User(UserBase, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str | None = Field(default=None, max_length=320, unique=True)
    slack_user_id: str | None = Field(default=None, max_length=32, unique=True)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
