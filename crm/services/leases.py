"""Leases: one holder at a time for a named piece of work (e.g. polling one mailbox).

A lease is a row with a holder and an expiry. Taking it is one conditional UPDATE (free,
expired, or already ours), then an INSERT when there is no row yet; the database settles
races: on PostgreSQL the second UPDATE waits for the first and re-checks its condition, on
SQLite write units are serialised. A holder renews well before expiry; a holder that dies
simply stops renewing and another replica takes over once the lease has run out.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from crm.models import Lease, utcnow
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

_table = Lease.__table__  # type: ignore[attr-defined]


def new_holder_id(prefix: str = "") -> str:
    """A holder name that says which process holds the lease (host, pid) and is unique."""
    name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    return f"{prefix}{name}"[:200]


def acquire_lease(
    session: Session,
    *,
    name: str,
    holder: str,
    ttl: timedelta,
    actor: Actor,
    now: datetime | None = None,
) -> bool:
    """Take or renew the lease ``name`` for ``ttl``; False when someone else holds it."""
    if ttl <= timedelta(0):
        raise CRMError("A lease needs a positive duration.")
    now = now or utcnow()
    expires = now + ttl
    previous = session.execute(
        sa.select(_table.c.holder, _table.c.expires_at).where(_table.c.name == name)
    ).first()
    result = session.execute(
        sa.update(_table)
        .where(
            _table.c.name == name,
            sa.or_(_table.c.holder == holder, _table.c.expires_at < now),
        )
        .values(holder=holder, expires_at=expires)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        if previous is not None and previous.holder != holder:
            logger.info("lease %s taken over from %s by %s", name, previous.holder, holder)
            record_event(
                session,
                actor=actor,
                action="take_over",
                entity="lease",
                entity_id=name[:64],
                before={"holder": previous.holder},
                after={"holder": holder},
            )
        return True
    if previous is not None:
        return False
    try:
        with session.begin_nested():
            session.execute(sa.insert(_table).values(name=name, holder=holder, expires_at=expires))
    except IntegrityError:
        # Another replica created the row between our UPDATE and INSERT: it holds the lease.
        return False
    record_event(
        session,
        actor=actor,
        action="acquire",
        entity="lease",
        entity_id=name[:64],
        after={"holder": holder},
    )
    return True


def release_lease(session: Session, *, name: str, holder: str, actor: Actor) -> bool:
    """Give the lease up at once (on a clean stop) so another replica need not wait for expiry."""
    result = session.execute(
        sa.update(_table)
        .where(_table.c.name == name, _table.c.holder == holder)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    released = result.rowcount == 1  # type: ignore[attr-defined]
    if released:
        record_event(
            session,
            actor=actor,
            action="release",
            entity="lease",
            entity_id=name[:64],
            before={"holder": holder},
        )
    return released


def current_holder(session: Session, name: str, now: datetime | None = None) -> Lease | None:
    """The live lease on ``name``, or None when it is free."""
    lease = session.get(Lease, name)
    if lease is None or lease.expires_at <= (now or utcnow()):
        return None
    return lease
