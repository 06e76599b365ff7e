"""a tamper-evident audit trail: every event joins a hash chain

Each audit event gets ``seq`` (its place in the chain), ``digest`` (a SHA-256 of its frame and
payload) and ``chain`` (a SHA-256 over the previous link, its seq and digest); the one-row
``audit_chain`` table holds the newest link. The events already stored are chained here, in
the order they were written (by id). The hashing below is a copy of the one in
``crm.services.audit`` at this revision, so that this migration means the same thing whatever
later code does (a test holds the two equal).

Revision ID: 0030
Revises: 0041
Create Date: 2026-12-04
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0041"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _canonical(value: Any) -> str:
    stored = json.loads(json.dumps(value, ensure_ascii=False))
    return json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stamp(at: datetime | str) -> str:
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _digest(row: Any) -> str:
    payload = _sha(_canonical({"before": row.before, "after": row.after}))
    frame = _canonical(
        {
            "at": _stamp(row.at),
            "actor": row.actor,
            "action": row.action,
            "entity": row.entity,
            "id": row.entity_id,
        }
    )
    return _sha(_sha(frame) + payload)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("chain", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_audit_events_seq", ["seq"])
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    events = sa.table(
        "audit_events",
        sa.column("id", sa.Integer),
        sa.column("at", sa.DateTime),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("entity", sa.String),
        sa.column("entity_id", sa.String),
        sa.column("before", sa.JSON),
        sa.column("after", sa.JSON),
        sa.column("seq", sa.BigInteger),
        sa.column("digest", sa.String),
        sa.column("chain", sa.String),
    )
    bind = op.get_bind()
    seq, previous = 0, ""
    last_id = 0
    while True:  # in batches: an old store may hold millions of events
        rows = bind.execute(
            sa.select(events).where(events.c.id > last_id).order_by(events.c.id).limit(5_000)
        ).all()
        if not rows:
            break
        updates = []
        for row in rows:
            seq += 1
            digest = _digest(row)
            previous = _sha(f"{previous}|{seq}|{digest}")
            updates.append({"row_id": row.id, "seq": seq, "digest": digest, "chain": previous})
        bind.execute(
            events.update()
            .where(events.c.id == sa.bindparam("row_id"))
            .values(
                seq=sa.bindparam("seq"), digest=sa.bindparam("digest"), chain=sa.bindparam("chain")
            ),
            updates,
        )
        last_id = rows[-1].id
    bind.execute(
        sa.table("audit_chain", sa.column("id"), sa.column("seq"), sa.column("chain"))
        .insert()
        .values(id=1, seq=seq, chain=previous)
    )


def downgrade() -> None:
    op.drop_table("audit_chain")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_events_seq", type_="unique")
        batch_op.drop_column("chain")
        batch_op.drop_column("digest")
        batch_op.drop_column("seq")
