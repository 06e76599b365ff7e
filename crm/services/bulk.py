"""Bulk paths for imports and generated data: validated rows, set-based inserts, one audit event a batch.

Row-by-row service calls would write an audit event and flush per row; loading a file of
100k customers that way takes minutes. These functions take already-normalised rows (the
callers validate them), insert them in large statements, and record one audit event per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from crm.models import ContactPoint, Customer, Deal, DealStageChange, FollowUp, Interaction, User
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.normalise import name_key

CHUNK = 5_000


def _with_defaults(model: Any, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Core inserts skip the models' Python defaults (timestamps, statuses): fill them in once a batch."""
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


def _insert(
    session: Session, model: Any, rows: Sequence[dict[str, Any]], *, returning: bool
) -> list[int]:
    ids: list[int] = []
    table = model.__table__
    rows = _with_defaults(model, rows)
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        if returning:
            stmt = sa.insert(table).returning(table.c.id, sort_by_parameter_order=True)
            ids.extend(row[0] for row in session.execute(stmt, list(chunk)))
        else:
            session.execute(sa.insert(table), list(chunk))
    return ids


def _insert_ignoring_duplicates(
    session: Session, model: Any, rows: Sequence[dict[str, Any]], keys: list[str]
) -> int:
    """Insert rows, skipping those that collide on ``keys``; returns how many were added."""
    table = model.__table__
    rows = _with_defaults(model, rows)
    added = 0
    dialect = session.get_bind().dialect.name
    for start in range(0, len(rows), CHUNK):
        chunk = list(rows[start : start + CHUNK])
        if dialect == "postgresql":
            stmt: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
        elif dialect == "sqlite":
            stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
        else:  # pragma: no cover - other backends are not supported
            stmt = sa.insert(table)
        added += len(session.execute(stmt.returning(table.c.id), chunk).all())
    return added


def insert_users(
    session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str
) -> list[int]:
    ids = _insert(session, User, rows, returning=True)
    record_event(
        session,
        actor=actor,
        action="bulk_create",
        entity="user",
        after={"count": len(ids), "source": label},
    )
    return ids


def insert_customers(
    session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str
) -> list[int]:
    for row in rows:
        row["name_key"] = name_key(row["name"])
    ids = _insert(session, Customer, rows, returning=True)
    record_event(
        session,
        actor=actor,
        action="bulk_create",
        entity="customer",
        after={"count": len(ids), "source": label},
    )
    return ids


def insert_contact_points(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    _insert(session, ContactPoint, rows, returning=False)


def insert_deals(
    session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str
) -> list[int]:
    ids = _insert(session, Deal, rows, returning=True)
    record_event(
        session,
        actor=actor,
        action="bulk_create",
        entity="deal",
        after={"count": len(ids), "source": label},
    )
    return ids


def insert_stage_changes(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    _insert(session, DealStageChange, rows, returning=False)


def insert_follow_ups(
    session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str
) -> None:
    _insert(session, FollowUp, rows, returning=False)
    record_event(
        session,
        actor=actor,
        action="bulk_create",
        entity="follow_up",
        after={"count": len(rows), "source": label},
    )


def insert_interactions(
    session: Session, rows: Sequence[dict[str, Any]], *, actor: Actor, label: str
) -> int:
    """Insert interactions; rows whose (source, external_id) exists already are skipped. Returns rows added."""
    added = _insert_ignoring_duplicates(session, Interaction, rows, ["source", "external_id"])
    record_event(
        session,
        actor=actor,
        action="bulk_create",
        entity="interaction",
        after={"count": added, "skipped": len(rows) - added, "source": label},
    )
    return int(added)
