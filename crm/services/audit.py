"""Audit events, written in the same transaction as the change they describe."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlmodel import Session, SQLModel, col, select

from crm.models import AuditEvent
from crm.services.actor import Actor


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def snapshot(obj: SQLModel | None, exclude: Sequence[str] = ()) -> dict[str, Any] | None:
    if obj is None:
        return None
    data = obj.model_dump(exclude=set(exclude))
    return {k: _jsonable(v) for k, v in data.items()}


def record_event(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: object = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor=actor.name[:200],
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=_jsonable(before) if before is not None else None,
        after=_jsonable(after) if after is not None else None,
    )
    session.add(event)
    return event


def history(
    session: Session, *, entity: str, entity_id: object, limit: int = 50
) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.entity == entity, AuditEvent.entity_id == str(entity_id))
        .order_by(col(AuditEvent.id).desc())
        .limit(limit)
    )
    return list(session.exec(stmt))
