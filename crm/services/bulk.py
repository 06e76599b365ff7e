"""Bulk paths for imports and generated data: validated rows, set-based inserts, one audit event a batch.

Row-by-row service calls write an audit event and flush per row; loading a file of 100k
customers that way takes minutes. These functions take rows the callers have validated,
write them with the database's fastest loader (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), and record one audit event per batch. Values are converted exactly as the
ORM column types would store them, so rows written here read back like any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from itertools import islice
from typing import Any

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlmodel import Session

from crm.models import (
    ContactPoint,
    Customer,
    Deal,
    DealStageChange,
    FollowUp,
    Interaction,
    Product,
    PurchaseLine,
    User,
)
from crm.models.base import SealedBytes, SealedJSON, SealedText, UTCDateTime
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.keys import index_key, keyed_digest
from crm.services.normalise import name_key
from crm.services.retention import holds_raw_mail

CHUNK = 20_000


def _with_defaults(model: Any, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set-based inserts skip the models' Python defaults (timestamps, statuses): fill them in once a batch."""
    columns = set(model.__table__.columns.keys())
    defaults: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == "id" or name not in columns:
            continue
        if info.default_factory is not None:
            defaults[name] = info.default_factory()  # type: ignore[call-arg]
        elif info.default is not PydanticUndefined:
            defaults[name] = info.default
    return [{**defaults, **row} for row in rows]


def _sqlite_time(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DATETIME type writes, so both paths sort and compare alike.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def converter(column: sa.Column[Any], dialect: str) -> Callable[[Any], Any] | None:
    """How to turn a Python value into what the driver stores for this column; None: as it is."""
    kind = column.type
    sqlite = dialect == "sqlite"
    if isinstance(kind, SealedText | SealedBytes | SealedJSON):
        # Sealed columns: encrypted here as the ORM would (keys set), else stored as given.
        return lambda v: kind.process_bind_param(v, None)
    if isinstance(kind, UTCDateTime):
        if sqlite:
            return lambda v: None if v is None else _sqlite_time(v)
        return lambda v: None if v is None else v.astimezone(UTC).replace(tzinfo=None)
    if isinstance(kind, sa.JSON):
        return lambda v: None if v is None else json.dumps(v)
    if isinstance(kind, sa.Enum):
        return lambda v: v.value if isinstance(v, Enum) else v
    if isinstance(kind, sa.Numeric) and sqlite:
        return lambda v: None if v is None else float(v)
    if isinstance(kind, sa.Numeric):
        return lambda v: None if v is None else Decimal(v)
    if isinstance(kind, sa.Date) and sqlite:
        return lambda v: v.isoformat() if isinstance(v, date) else v
    return None


@contextmanager
def page_cache(session: Session, megabytes: int = 64) -> Iterator[None]:
    """On SQLite, a bigger page cache for the connection while a bulk write runs, back to the
    default after. SQLite's default (2 MB) makes inserting a million rows into a big table's
    secondary indexes (whose keys do not arrive in order) read and write the same pages again
    and again; 64 MB about halved the time to add a run's rows to a store of 1M customers
    (the store phase of ``python bench/analytics.py``). Elsewhere a no-op."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    conn = session.connection()
    default = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{int(megabytes) * 1024}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(default)}")


def _insert_in_chunks(raw: Any, sql: str, values: Iterable[tuple[Any, ...]]) -> None:
    """``executemany`` on a SQLite connection, CHUNK rows at a time (never all in memory)."""
    cursor = raw.cursor()
    rows = iter(values)
    while chunk := list(islice(rows, CHUNK)):
        cursor.executemany(sql, chunk)
    cursor.close()


def write_rows(
    session: Session,
    table: sa.Table,
    names: Sequence[str],
    values: Iterable[tuple[Any, ...]],
    *,
    skip_conflicts_on: Sequence[str] = (),
) -> int:
    """Write tuples already in the driver's form with the database's fastest loader
    (``executemany`` on SQLite, ``COPY`` on PostgreSQL); returns rows added. Rows colliding on
    ``skip_conflicts_on`` are skipped; any other broken constraint fails the whole batch."""
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    column_list = ", ".join(f'"{n}"' for n in names)
    if session.get_bind().dialect.name == "sqlite":
        sql = f'INSERT INTO "{table.name}" ({column_list}) VALUES ({", ".join("?" * len(names))})'
        if skip_conflicts_on:
            keys = ", ".join(f'"{k}"' for k in skip_conflicts_on)
            sql += f" ON CONFLICT ({keys}) DO NOTHING"
        before = raw.total_changes
        _insert_in_chunks(raw, sql, values)
        return int(raw.total_changes - before)
    with raw.cursor() as cursor:
        target = table.name
        if skip_conflicts_on:
            target = f"_load_{table.name}"
            cursor.execute(f'CREATE TEMP TABLE "{target}" (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DROP')
        added = 0
        with cursor.copy(f'COPY "{target}" ({column_list}) FROM STDIN') as copy:
            for row in values:
                copy.write_row(row)
                added += 1
        if skip_conflicts_on:
            keys = ", ".join(f'"{k}"' for k in skip_conflicts_on)
            cursor.execute(
                f'INSERT INTO "{table.name}" ({column_list}) SELECT {column_list} FROM "{target}" '
                f"ON CONFLICT ({keys}) DO NOTHING"
            )
            added = cursor.rowcount
            cursor.execute(f'DROP TABLE "{target}"')
    return added


class Stage:
    """A scratch SQLite file that rows are written into away from the store and its write
    lock, then copied into the store inside a write unit by ``copy_staged`` (one INSERT ...
    SELECT, run by SQLite with no value bound from Python). Used on a SQLite store, whose one
    writer at a time locks everyone else out for as long as a write unit lasts. Values go in
    as ``write_rows`` takes them (already in the stored form). ``close`` removes the file."""

    def __init__(self, directory: str | None = None) -> None:
        # Beside the store's own file by default: as big as what it holds for a while, so
        # better on that disk than in a small temporary file system.
        fd, self.path = tempfile.mkstemp(prefix="crmbot-stage-", suffix=".db", dir=directory)
        os.close(fd)
        # Scratch data: no journal and no syncing (a crash loses only this file).
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        self.tables: dict[str, tuple[str, ...]] = {}

    def write(self, table: str, names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        columns = ", ".join(f'"{n}"' for n in names)
        self._conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        self._conn.execute(f'CREATE TABLE "{table}" ({columns})')
        self._conn.execute("BEGIN")
        _insert_in_chunks(
            self._conn, f'INSERT INTO "{table}" VALUES ({", ".join("?" * len(names))})', rows
        )
        self._conn.execute("COMMIT")
        self.tables[table] = tuple(names)

    def close(self) -> None:
        self._conn.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def copy_staged(
    session: Session, alias: str, table: str, names: Sequence[str], constants: dict[str, Any]
) -> None:
    """Copy a staged table (``Stage``, attached as ``alias``) into the store's table of that
    name, with ``constants`` for the columns the stage does not hold."""
    fixed = list(constants)
    columns = ", ".join(f'"{n}"' for n in [*fixed, *names])
    picked = ", ".join(["?"] * len(fixed) + [f'"{n}"' for n in names])
    session.connection().exec_driver_sql(
        f'INSERT INTO main."{table}" ({columns}) SELECT {picked} FROM {alias}."{table}"',
        tuple(constants.values()),
    )


def _load(
    session: Session,
    model: Any,
    rows: Sequence[dict[str, Any]],
    *,
    assign_ids: bool = False,
    skip_conflicts_on: Sequence[str] = (),
) -> tuple[list[int], int]:
    """Write rows; returns (assigned ids, rows added). Rows colliding on ``skip_conflicts_on`` are skipped."""
    if not rows:
        return [], 0
    table: sa.Table = model.__table__
    full = _with_defaults(model, rows)
    dialect = session.get_bind().dialect.name
    columns = [c for c in table.columns if c.name != "id" and any(c.name in r for r in full[:1])]
    names = [c.name for c in columns]
    convert = [converter(c, dialect) for c in columns]
    ids: list[int] = []
    conn = session.connection()
    if assign_ids:
        # Ids are taken up front (sequence on PostgreSQL; under the write lock on SQLite) so
        # callers can link child rows without a RETURNING round trip per row.
        if dialect == "postgresql":
            seq = conn.exec_driver_sql(f"SELECT pg_get_serial_sequence('{table.name}', 'id')").scalar_one()
            ids = [r[0] for r in conn.exec_driver_sql(f"SELECT nextval('{seq}') FROM generate_series(1, {len(full)})")]
        else:
            start = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one() + 1
            if table.dialect_options["sqlite"]["autoincrement"]:
                # Past every id ever handed out, not just the highest one alive (a merged-away
                # customer's id stays retired); SQLite moves the counter on as these rows go in.
                handed_out = conn.exec_driver_sql(
                    "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = ?",
                    (table.name,),
                ).scalar_one()
                start = max(start, handed_out + 1)
            ids = list(range(start, start + len(full)))
        names = ["id", *names]
        convert = [None, *convert]
        for row, new_id in zip(full, ids, strict=True):
            row["id"] = new_id
    # Column by column: one conversion function call per value, no per-row Python loop.
    columns_out = []
    for name, fn in zip(names, convert, strict=True):
        raw_values = [row.get(name) for row in full]
        columns_out.append(list(map(fn, raw_values)) if fn else raw_values)
    values = list(zip(*columns_out, strict=True))
    added = write_rows(session, table, names, values, skip_conflicts_on=skip_conflicts_on)
    return ids, added


def insert_users(session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str) -> list[int]:
    ids, _ = _load(session, User, rows, assign_ids=True)
    record_event(session, actor=actor, action="bulk_create", entity="user", after={"count": len(ids), "source": label})
    return ids


def insert_customers(session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str) -> list[int]:
    for row in rows:
        row["name_key"] = name_key(row["name"])
    ids, _ = _load(session, Customer, rows, assign_ids=True)
    record_event(session, actor=actor, action="bulk_create", entity="customer", after={"count": len(ids), "source": label})
    return ids


def insert_contact_points(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Contact points, each with its keyed hash (the unique lookup key) filled in here."""
    key = index_key(session)
    _load(
        session,
        ContactPoint,
        [{**row, "digest": keyed_digest(key, row["kind"], row["value"])} for row in rows],
    )


def insert_deals(session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str) -> list[int]:
    ids, _ = _load(session, Deal, rows, assign_ids=True)
    record_event(session, actor=actor, action="bulk_create", entity="deal", after={"count": len(ids), "source": label})
    return ids


def insert_stage_changes(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    _load(session, DealStageChange, rows)


def insert_follow_ups(session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str) -> None:
    _load(session, FollowUp, rows)
    record_event(session, actor=actor, action="bulk_create", entity="follow_up", after={"count": len(rows), "source": label})


def insert_products(
    session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str
) -> list[int]:
    """Insert catalogue rows (SKUs not stored yet); returns their ids."""
    ids, _ = _load(session, Product, rows, assign_ids=True)
    record_event(session, actor=actor, action="bulk_create", entity="product",
                 after={"count": len(ids), "source": label})
    return ids


def insert_purchase_lines(
    session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str
) -> None:
    """Insert the line items of purchases."""
    _load(session, PurchaseLine, rows)
    record_event(session, actor=actor, action="bulk_create", entity="purchase_line",
                 after={"count": len(rows), "source": label})


def product_ids(session: Session, skus: Sequence[str]) -> dict[str, int]:
    """Map of SKU -> product id for the SKUs in the catalogue already (queried in chunks)."""
    found: dict[str, int] = {}
    items = sorted(set(skus))
    for start in range(0, len(items), 2_000):
        chunk = items[start : start + 2_000]
        stmt = sa.select(Product.sku, Product.id).where(Product.sku.in_(chunk))  # type: ignore[call-overload, attr-defined]
        found.update({sku: pid for sku, pid in session.execute(stmt)})
    return found


def purchases_of_source(session: Session, source: str) -> list[tuple[int, int, datetime]]:
    """(interaction id, customer id, time) of every purchase written under ``source``."""
    stmt = sa.select(  # type: ignore[call-overload]
        Interaction.id, Interaction.customer_id, Interaction.occurred_at
    ).where(
        Interaction.source == source, Interaction.channel == "purchase"
    )
    return [(iid, cid, at) for iid, cid, at in session.execute(stmt)]


def insert_interactions(session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str) -> int:
    """Insert interactions; rows whose (source, external_id) is stored already are skipped. Returns rows added."""
    rows = [{**row, "holds_raw_mail": holds_raw_mail(row.get("meta"))} for row in rows]
    _, added = _load(session, Interaction, rows, skip_conflicts_on=("source", "external_id"))
    record_event(session, actor=actor, action="bulk_create", entity="interaction",
                 after={"count": added, "skipped": len(rows) - added, "source": label})
    return added
