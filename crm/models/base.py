"""Shared column types and helpers for the tables."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

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


# ---------------------------------------------------------------- sealed (encrypted) columns
#
# Personal data (bodies, raw mail, phone numbers, postal addresses, notes) lives in sealed
# columns. With encryption keys configured (``crm.crypto.configure``) a value is written as
# ``enc1:<key id>:<token>`` and read back as it was; without keys it is written as it is, and
# ``crmbot keys rotate`` seals it later. A sealed column is never searched by its contents:
# exact lookups use a keyed hash beside it (contact points' ``digest``). Comparisons in SQL
# see the stored form (``LIKE 'enc1:%'``), which is what key rotation and status need.

SEAL_PREFIX = "enc1:"
# The whole head of a sealed value: prefix, key id, and a Fernet token's first bytes (its
# version byte, 0x80, is "gA" in base64); plain text that merely starts with "enc1:" is text.
_SEALED_HEAD = re.compile(rb"enc1:[0-9a-f]{8}:gA")


class Cipher(Protocol):
    """What sealed columns need of the keyring: ``seal`` gives ``enc1:<key id>:<token>``."""

    def seal(self, data: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes: ...


class SealedValueError(RuntimeError):
    """A sealed value read without the key that sealed it."""


_cipher: Cipher | None = None


def install_cipher(cipher: Cipher | None) -> None:
    """Set (or, with None, clear) the keyring every sealed column of this process uses."""
    global _cipher
    _cipher = cipher


def current_cipher() -> Cipher | None:
    return _cipher


def is_sealed(stored: str | bytes | None) -> bool:
    if stored is None:
        return False
    head = stored[:16]
    return _SEALED_HEAD.match(head if isinstance(head, bytes) else head.encode("utf-8")) is not None


def seal_bytes(data: bytes) -> bytes:
    return data if _cipher is None else _cipher.seal(data)


def open_bytes(stored: bytes) -> bytes:
    if not is_sealed(stored):
        return stored
    if _cipher is None:
        raise SealedValueError(
            "this value is encrypted and no keys are set: set CRM_ENCRYPTION_KEYS to the keys "
            "the data was encrypted with"
        )
    return _cipher.open(stored)


def open_text(stored: str | None) -> str | None:
    """A sealed text column's value read as stored (e.g. through a UNION): as written."""
    if stored is None or not is_sealed(stored):
        return stored
    return open_bytes(stored.encode("ascii")).decode("utf-8")


class SealedText(TypeDecorator[str]):
    """Text stored encrypted when keys are set. ``length`` is the longest plain value the
    services accept (the stored form is longer, so the column itself is TEXT)."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return sa.Text()

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None or _cipher is None:
            return value
        return _cipher.seal(value.encode("utf-8")).decode("ascii")

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return open_text(value)


class SealedBytes(TypeDecorator[bytes]):
    """Bytes (raw messages) stored encrypted when keys are set."""

    impl = sa.LargeBinary
    cache_ok = True

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return sa.LargeBinary()

    def process_bind_param(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else seal_bytes(bytes(value))

    def process_result_value(self, value: Any, dialect: Any) -> bytes | None:
        return None if value is None else open_bytes(bytes(value))


class SealedJSON(TypeDecorator[Any]):
    """A JSON value stored as text, encrypted when keys are set; None is SQL NULL."""

    impl = sa.Text
    cache_ok = True

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return sa.Text()

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        text = json.dumps(value, ensure_ascii=False, default=str)
        if _cipher is None:
            return text
        return _cipher.seal(text.encode("utf-8")).decode("ascii")

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):  # a JSON column's value, before its migration to text
            return value
        if is_sealed(value):
            value = open_bytes(value.encode("ascii")).decode("utf-8")
        return json.loads(value)


def sealed_json_column() -> sa.Column[Any]:
    return sa.Column(SealedJSON(), nullable=True)


def compare_column_types(
    context: Any, inspected: Any, described: Any, inspected_type: Any, described_type: Any
) -> bool | None:
    """Alembic's type comparison, but for sealed columns on SQLite: there every column holds
    text whatever its declared type (lengths are not enforced), so a sealed column keeps the
    type it was made with and is not rebuilt. None: Alembic's own comparison."""
    if context.dialect.name == "sqlite" and isinstance(
        described_type, SealedText | SealedJSON | SealedBytes
    ):
        return False
    return None


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
