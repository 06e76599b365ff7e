"""Columnar reads: a table's rows straight into numpy arrays, with no Python object per row.

The analytics refresh reads whole tables (every interaction of every customer). Through a
DB-API cursor each value of each row becomes a Python object first, and that costs several
times the database's own scan. So the database packs the rows itself: every selected value
becomes a 64-bit integer, and one aggregate per block of primary keys concatenates the
rows into a single value, which numpy reads as an int64 matrix in C.

* PostgreSQL: ``string_agg(int8send(a) || int8send(b) ..., '')``, one ``bytea`` per block
  (int8send is the big-endian binary form).
* SQLite: ``group_concat(printf('%016x%016x...', a, b, ...), '')``, one hex text per block,
  decoded by ``bytes.fromhex``. (SQLite has no binary aggregate; an Arrow driver would
  bring a second copy of the SQLite library into the process, and two copies in one process
  break SQLite's file locks.)

Reads go through the session's own connection, so they see its transaction. Times come back
as int64 microseconds since 1970 (UTC), money as cents, text columns as small codes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from sqlmodel import Session

# Missing times: far past or far future (±146,000 years), so comparisons need no null mask.
NEVER_BEFORE = -(2**62)
NEVER_AFTER = 2**62
US_PER_DAY = 86_400_000_000
# Primary keys per packed block: about 12 MB of text per block on SQLite.
BLOCK = 1 << 18


@dataclass(frozen=True)
class Column:
    """One selected column and how it becomes an int64.

    kind: ``int`` (nulls become ``null``), ``time`` (µs since 1970 UTC; nulls become
    ``null``), ``date`` (its midnight UTC, as ``time``), ``money`` (cents), ``code`` (the
    position of the text in ``values``, -1 for anything else, nulls included).
    """

    name: str
    kind: str
    values: tuple[str, ...] = ()
    null: int = -1


def micros(when: datetime) -> int:
    """An aware datetime as int64 microseconds since 1970 UTC."""
    if when.tzinfo is None:
        raise ValueError("a timezone-aware (UTC) datetime is needed")
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def time_literal(when: datetime, dialect: str) -> str:
    """A time as SQL text that compares exactly as the stored column does (our own value,
    never user input: the format leaves room for nothing else)."""
    text = when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return f"'{text}'" if dialect == "sqlite" else f"TIMESTAMP '{text}'"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Packed:
    """An integer column and small code columns in one int64 (fewer values to move):
    ``base * 8**len(codes) + sum((code + 1) * 8**i)``; each code has fewer than 7 values."""

    name: str
    base: Column
    codes: tuple[Column, ...]

    def unpack(self, values: np.ndarray) -> dict[str, np.ndarray]:
        out = {self.base.name: values >> (3 * len(self.codes))}
        for i, code in enumerate(self.codes):
            out[code.name] = ((values >> (3 * i)) & 7) - 1
        return out


def _expression(column: Column | Packed, dialect: str) -> str:
    if isinstance(column, Packed):
        if any(len(c.values) > 6 for c in column.codes):
            raise ValueError("a packed code holds at most 6 values")
        parts = [f"({_expression(column.base, dialect)} * {8 ** len(column.codes)})"]
        parts += [f"(({_expression(c, dialect)} + 1) * {8**i})" for i, c in enumerate(column.codes)]
        return "(" + " + ".join(parts) + ")"
    name = f'"{column.name}"'
    if column.kind == "code":
        cases = " ".join(f"WHEN {_quoted(v)} THEN {n}" for n, v in enumerate(column.values))
        return f"(CASE {name} {cases} ELSE -1 END)"
    if column.kind == "money":
        if dialect == "sqlite":
            return f"CAST(round(coalesce({name}, 0) * 100) AS INTEGER)"
        return f"coalesce(({name} * 100)::int8, 0)"
    if column.kind in ("time", "date"):
        if dialect == "sqlite":
            # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) or 'YYYY-MM-DD': whole seconds,
            # then the digits of the fraction (none for a date). unixepoch (SQLite 3.38+)
            # reads a time with less work than strftime: ten million of them per refresh.
            seconds = (
                f"unixepoch(substr({name}, 1, 19))"
                if sqlite3.sqlite_version_info >= (3, 38)
                else f"CAST(strftime('%s', substr({name}, 1, 19)) AS INTEGER)"
            )
            value = f"({seconds} * 1000000 + CAST(substr({name}, 21, 6) AS INTEGER))"
            return f"coalesce({value}, {column.null})"
        # timestamp_send is the stored int64 (µs since 2000) as it is: exact, and no
        # arithmetic per row. A null is sent as 'infinity' and mapped back after decoding.
        value = f"{name}::timestamp" if column.kind == "date" else name
        return f"timestamp_send(coalesce({value}, 'infinity'))"
    if column.kind == "int":
        return f"coalesce({name}, {column.null})"
    raise ValueError(f"unknown column kind {column.kind!r}")


def _connection(bind: Session | sa.Connection) -> sa.Connection:
    return bind.connection() if isinstance(bind, Session) else bind


_PG_EPOCH_US = 946_684_800_000_000  # PostgreSQL counts timestamps from 2000-01-01
_PG_INFINITY = np.iinfo(np.int64).max


def read_columns(
    bind: Session | sa.Connection,
    table: str,
    columns: Sequence[Column | Packed],
    where: str = "TRUE",
    *,
    readers: int = 1,
    block: int = BLOCK,
) -> dict[str, np.ndarray]:
    """Every row of ``table`` matching ``where`` (SQL text built by the caller from its own
    values), one int64 array per column, in primary key blocks of ``block``.

    ``readers`` > 1 reads the blocks over that many PostgreSQL connections at once (the
    caller's and new ones from its engine): each block is its own statement either way, so
    this sees what one reader would, as long as the caller has nothing uncommitted to see
    (the refresh only reads before it writes)."""
    conn = _connection(bind)
    dialect = conn.dialect.name
    values = [_expression(c, dialect) for c in columns]
    if dialect == "sqlite":
        packed = f"group_concat(printf('{'%016x' * len(values)}', {', '.join(values)}), '')"
    else:
        sent = [
            v if isinstance(c, Column) and c.kind in ("time", "date") else f"int8send(({v})::int8)"
            for c, v in zip(columns, values, strict=True)
        ]
        packed = "string_agg(" + " || ".join(sent) + ", ''::bytea)"
    low, high = conn.exec_driver_sql(f'SELECT min(id), max(id) FROM "{table}"').one()
    starts = [] if low is None else list(range(int(low), int(high) + 1, block))
    marks = ("?", "?") if dialect == "sqlite" else ("%s", "%s")
    sql = f'SELECT {packed} FROM "{table}" WHERE id >= {marks[0]} AND id < {marks[1]}'
    sql += f" AND ({where})"
    blocks: list[np.ndarray | None] = [None] * len(starts)

    def read(reader: sa.Connection, mine: Sequence[int]) -> None:
        for n in mine:
            data = reader.exec_driver_sql(sql, (starts[n], starts[n] + block)).scalar()
            if data:
                raw = bytes.fromhex(data) if isinstance(data, str) else bytes(data)
                blocks[n] = np.frombuffer(raw, dtype=">i8").astype(np.int64)

    def read_apart(mine: Sequence[int]) -> None:
        with conn.engine.connect() as own:
            read(own, mine)

    # SQLite reads on one connection: two reader threads in one process measured slower than
    # one (the library's shared allocator serialises them; 300k customers: 7.5 s against 6.4 s).
    readers = 1 if dialect == "sqlite" else max(1, min(readers, len(starts)))
    if readers == 1:
        read(conn, range(len(starts)))
    else:
        # Block n goes to reader n % readers: each reader's share spreads over the table.
        shares = [range(r, len(starts), readers) for r in range(readers)]
        with ThreadPoolExecutor(readers - 1) as pool:
            others = [pool.submit(read_apart, share) for share in shares[1:]]
            read(conn, shares[0])
            for other in others:
                other.result()
    blocks = [b for b in blocks if b is not None]
    flat = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
    matrix = flat.reshape(-1, len(columns))
    out: dict[str, np.ndarray] = {}
    for n, column in enumerate(columns):
        values = np.ascontiguousarray(matrix[:, n])
        if isinstance(column, Packed):
            out |= column.unpack(values)
            continue
        if column.kind in ("time", "date") and dialect != "sqlite":
            missing = values == _PG_INFINITY
            values += _PG_EPOCH_US
            values[missing] = column.null
        out[column.name] = values
    return out
