"""Signed requests carried out once.

A request signed by Slack stays valid for five minutes, so the same bytes sent again within
that time pass the signature check. Each accepted request is remembered here by its signature;
a repeat finds it and is answered without being carried out again. The store is shared, so this
holds across replicas behind one load balancer. Rows older than the signature's validity can
never match again and are pruned.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from crm.models import SeenRequest, utcnow

Executor = Session | sa.Connection

_table = SeenRequest.__table__  # type: ignore[attr-defined]

# Slack refuses timestamps more than five minutes off; remember a little longer than that.
REMEMBER = timedelta(minutes=10)


def first_sighting(session: Executor, *, key: str, now: datetime | None = None) -> bool:
    """Record the request ``key``; False when it was recorded before (a repeat)."""
    bind = session.get_bind() if isinstance(session, Session) else session
    dialect = bind.dialect.name
    if dialect == "postgresql":
        # On the path of every Slack request: the commit need not wait for the disk. A crash
        # could forget the last few, which only reopens their five minutes.
        session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(_table)
        .values(key=key[:128], seen_at=now or utcnow())
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_table.c.key)
    )
    # A row comes back only when it was inserted (rowcount is not reliable for this on every
    # driver: psycopg reports -1).
    return session.execute(stmt).first() is not None


def forget_before(session: Executor, before: datetime) -> int:
    """Drop the requests seen before ``before``; how many went."""
    result = session.execute(sa.delete(_table).where(_table.c.seen_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
