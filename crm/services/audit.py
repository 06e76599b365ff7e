"""Audit events, written in the same transaction as the change they describe.

The events form a hash chain (see ``crm.models.audit``). Each event's ``digest`` is
``sha256(frame digest + payload digest)``: the frame is when, who, what and which record; the
payload is the before and after state. Erasing a person (``crm.services.erasure``) replaces
the payloads that name them by the payload digest alone, so every link still verifies while
the data is gone; the erasure's own event lists the events it scrubbed, and ``verify_chain``
accepts a scrubbed payload only for those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col, select

from crm.models import AuditChainHead, AuditEvent
from crm.services.actor import Actor

_events = AuditEvent.__table__  # type: ignore[attr-defined]
_head = AuditChainHead.__table__  # type: ignore[attr-defined]

# The action of an erasure's tombstone; its ``after["scrubbed_events"]`` lists the seqs of the
# events whose payload it replaced by the payload digest.
ERASURE_ACTION = "forget"
ERASED_KEY = "erased_payload_digest"


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


# ---------------------------------------------------------------- the chain


def _canonical(value: Any) -> str:
    """One text for a JSON value however it was built (key order, int keys, tuples)."""
    stored = json.loads(json.dumps(value, ensure_ascii=False))  # as the JSON column keeps it
    return json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stamp(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def payload_digest(before: Any, after: Any) -> str:
    return _sha(_canonical({"before": before, "after": after}))


def event_digest(
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    payload: str,
) -> str:
    frame = _canonical(
        {"at": _stamp(at), "actor": actor, "action": action, "entity": entity, "id": entity_id}
    )
    return _sha(_sha(frame) + payload)


def link(previous: str, seq: int, digest: str) -> str:
    return _sha(f"{previous}|{seq}|{digest}")


def erased_payload(before: Any, after: Any) -> str | None:
    """The payload digest an erasure left in place of the payload, or None."""
    if before is None and isinstance(after, dict) and set(after) == {ERASED_KEY}:
        value = after[ERASED_KEY]
        return value if isinstance(value, str) else None
    return None


def _lock_head(session: Session) -> tuple[int, str]:
    """The chain's newest link, locked until the transaction ends (on SQLite a write
    transaction holds the database's write lock already)."""
    query = sa.select(_head.c.seq, _head.c.chain).where(_head.c.id == 1).with_for_update()
    row = session.execute(query).one_or_none()
    if row is None:  # an emptied store: the chain starts again
        dialect = session.get_bind().dialect.name
        insert = (postgresql if dialect == "postgresql" else sqlite).insert(_head)
        session.execute(
            insert.values(id=1, seq=0, chain="").on_conflict_do_nothing(index_elements=["id"])
        )
        row = session.execute(query).one()
    return int(row.seq), str(row.chain)


def head_seq(session: Session) -> int:
    """The chain's newest seq (0 when empty), unlocked: a mark to look back to later."""
    seq = session.execute(sa.select(_head.c.seq).where(_head.c.id == 1)).scalar_one_or_none()
    return int(seq or 0)


def lock_chain(session: Session) -> int:
    """Lock the chain's head until the transaction ends and return its seq. Every audited
    change takes this lock when it records its event; a change that must not interleave with
    another (an analytics run's store and an erasure) takes it first."""
    return _lock_head(session)[0]


def erased_customers_since(session: Session, seq: int) -> list[int]:
    """The customers erased by events after ``seq`` (see ``head_seq``)."""
    rows = session.execute(
        sa.select(_events.c.entity_id).where(
            _events.c.seq > seq,
            _events.c.action == ERASURE_ACTION,
            _events.c.entity == "customer",
        )
    )
    return sorted({int(r) for (r,) in rows if r is not None and str(r).isdigit()})


def _chain_rows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Give each event row (dicts of the table's columns) its seq, digest and chain link."""
    seq, previous = _lock_head(session)
    for row in rows:
        seq += 1
        digest = event_digest(
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            entity=row["entity"],
            entity_id=row["entity_id"],
            payload=payload_digest(row["before"], row["after"]),
        )
        previous = link(previous, seq, digest)
        row.update(seq=seq, digest=digest, chain=previous)
    session.execute(sa.update(_head).where(_head.c.id == 1).values(seq=seq, chain=previous))


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
    row: dict[str, Any] = {
        "at": datetime.now(UTC),
        "actor": actor.name[:200],
        "action": action,
        "entity": entity,
        "entity_id": None if entity_id is None else str(entity_id),
        "before": _jsonable(before) if before is not None else None,
        "after": _jsonable(after) if after is not None else None,
    }
    _chain_rows(session, [row])
    event = AuditEvent(**row)
    session.add(event)
    return event


def record_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert many events at once (a batch of captured mail): one set-based INSERT, chained
    in the order given. Each row has ``at, actor, action, entity, entity_id, before, after``."""
    if not rows:
        return
    _chain_rows(session, rows)
    session.execute(sa.insert(_events), rows)


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


# ---------------------------------------------------------------- verify and export


@dataclass(frozen=True)
class BrokenLink:
    event_id: int | None
    seq: int | None
    problem: str


@dataclass(frozen=True)
class ChainReport:
    events: int
    scrubbed: int
    head_seq: int
    head_chain: str
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


_COLUMNS = (
    _events.c.id,
    _events.c.at,
    _events.c.actor,
    _events.c.action,
    _events.c.entity,
    _events.c.entity_id,
    _events.c.before,
    _events.c.after,
    _events.c.seq,
    _events.c.digest,
    _events.c.chain,
)


def _scrubbed_seqs(session: Session) -> set[int]:
    """Seqs whose payload an erasure replaced, as the erasures' own events list them (those
    events are verified like any other, so the list cannot be extended unnoticed)."""
    seqs: set[int] = set()
    rows = session.execute(sa.select(_events.c.after).where(_events.c.action == ERASURE_ACTION))
    for (after,) in rows:
        listed = (after or {}).get("scrubbed_events") if isinstance(after, dict) else None
        seqs.update(int(s) for s in listed or () if isinstance(s, int))
    return seqs


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain in order; the first event that does not hold is reported."""
    unchained = session.execute(
        sa.select(_events.c.id).where(_events.c.seq.is_(None)).order_by(_events.c.id).limit(1)
    ).scalar()
    head = session.execute(sa.select(_head.c.seq, _head.c.chain).where(_head.c.id == 1)).first()
    head_seq, head_chain = (int(head.seq), str(head.chain)) if head else (0, "")
    scrubbed_ok = _scrubbed_seqs(session)
    broken: BrokenLink | None = None
    if unchained is not None:
        broken = BrokenLink(unchained, None, "it is not in the chain (added outside crmbot)")
    count = scrubbed = 0
    expected_seq, previous = 1, ""
    rows = session.execute(
        sa.select(*_COLUMNS)
        .order_by(_events.c.seq)
        .where(_events.c.seq.is_not(None))
        .execution_options(yield_per=5_000)
    )
    for row in rows:
        count += 1
        if broken is not None:
            continue  # count the rest; the first break is what is reported
        if row.seq != expected_seq:
            missing = (
                f"{expected_seq}"
                if row.seq == expected_seq + 1
                else f"{expected_seq}..{row.seq - 1}"
            )
            broken = BrokenLink(
                row.id, row.seq, f"the event(s) before it are missing (seq {missing} deleted)"
            )
            continue
        kept = erased_payload(row.before, row.after)
        if kept is not None:
            if row.seq not in scrubbed_ok:
                broken = BrokenLink(
                    row.id, row.seq, "its payload was removed, but no erasure lists it"
                )
                continue
            scrubbed += 1
            payload = kept
        else:
            payload = payload_digest(row.before, row.after)
        digest = event_digest(
            at=row.at,
            actor=row.actor,
            action=row.action,
            entity=row.entity,
            entity_id=row.entity_id,
            payload=payload,
        )
        if digest != row.digest:
            broken = BrokenLink(row.id, row.seq, "its content was changed after it was written")
            continue
        if link(previous, row.seq, digest) != row.chain:
            broken = BrokenLink(row.id, row.seq, "its chain link was changed")
            continue
        previous = row.chain
        expected_seq += 1
    if broken is None and (head_seq != expected_seq - 1 or head_chain != previous):
        if head_seq > expected_seq - 1:
            problem = f"the newest event(s) are missing (seq {expected_seq}..{head_seq} deleted)"
        else:
            problem = "the chain's head does not match its newest event"
        broken = BrokenLink(None, expected_seq, problem)
    return ChainReport(count, scrubbed, head_seq, head_chain, broken)


def events_since(session: Session, *, actor: Actor, since: datetime) -> Iterator[dict[str, Any]]:
    """The events at or after ``since``, in chain order, with their links (for review; the
    payloads show what records held, so managers and admins only)."""
    actor.require_manager("export the audit trail")
    return _events_since(session, since)


def _events_since(session: Session, since: datetime) -> Iterator[dict[str, Any]]:
    query = (
        sa.select(*_COLUMNS)
        .where(_events.c.at >= since)
        .order_by(_events.c.seq.nulls_last(), _events.c.id)
        .execution_options(yield_per=5_000)
    )
    for row in session.execute(query):
        yield {
            "id": row.id,
            "seq": row.seq,
            "at": row.at.isoformat(),
            "actor": row.actor,
            "action": row.action,
            "entity": row.entity,
            "entity_id": row.entity_id,
            "before": row.before,
            "after": row.after,
            "digest": row.digest,
            "chain": row.chain,
        }
