"""Shared column types and helpers for the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored as naive UTC and always come back timezone-aware (UTC).

    SQLite has no time zones and PostgreSQL's ``timestamptz`` converts to the session zone;
    one rule for both keeps comparisons and aggregates identical on each backend.
    """

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text from aggregates
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The last item of ``__table_args__`` of a table whose ids people and the audit trail quote:
# SQLite then never hands out the id of a deleted row again (PostgreSQL sequences never do).
NEVER_REUSE_IDS: dict[str, Any] = {"sqlite_autoincrement": True}

# Money: 2 decimal places, enough for any ISO currency we support.
MONEY = sa.Numeric(18, 2, asdecimal=True)


def money_column(nullable: bool = True) -> sa.Column[Decimal]:
    return sa.Column(MONEY, nullable=nullable)


def utc_column(nullable: bool = False, index: bool = False) -> sa.Column[datetime]:
    return sa.Column(UTCDateTime(), nullable=nullable, index=index)


def json_column() -> sa.Column[Any]:
    return sa.Column(sa.JSON(none_as_null=True), nullable=True)


def enum_type(enum: type[StrEnum], length: int = 16) -> sa.Enum:
    """Enums are stored as their plain string values (no database enum type to migrate)."""
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    rep = "rep"
    viewer = "viewer"


class CustomerStatus(StrEnum):
    lead = "lead"
    active = "active"
    churned = "churned"


class ContactKind(StrEnum):
    email = "email"
    phone = "phone"
    slack = "slack"


class DealStatus(StrEnum):
    open = "open"
    won = "won"
    lost = "lost"


class Channel(StrEnum):
    email = "email"
    slack = "slack"
    call = "call"
    meeting = "meeting"
    note = "note"
    purchase = "purchase"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"
    internal = "internal"


class FollowUpKind(StrEnum):
    """What a follow-up is about: selling, or serving a customer (a done "service" follow-up
    may bring a satisfaction survey)."""

    sales = "sales"
    service = "service"


class FollowUpStatus(StrEnum):
    open = "open"
    done = "done"
    snoozed = "snoozed"
