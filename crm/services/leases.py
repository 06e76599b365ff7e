"""Leases: one holder at a time for a named piece of work (e.g. polling one mailbox).

A lease is a row with a holder and an expiry. Taking it is one conditional UPDATE (free,
expired, or already ours), then an INSERT when there is no row yet; the database settles
races: on PostgreSQL the second UPDATE waits for the first and re-checks its condition, on
SQLite write units are serialised. A holder renews well before expiry; a holder that dies
simply stops renewing and another replica takes over once the lease has run out.

A holder's name says which process holds the lease (host, process id and, on Linux, the
process-id namespace). When that process is on this host and is gone (a crash, ``kill -9``),
the lease is taken back at once instead of after it runs out: a restarted ``crmbot run``
polls right away.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from crm.models import Lease, utcnow
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

_table = Lease.__table__  # type: ignore[attr-defined]


_HOLDER_RE = re.compile(r"(?:^|:)(?P<host>[^:@]+):(?P<pid>\d+):[0-9a-f]+(?:@(?P<ns>[\w.-]+))?$")


def _pid_namespace() -> str | None:
    """This process's pid namespace (Linux): process ids are only comparable within one, and
    two containers may share a host name."""
    try:
        link = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    m = re.search(r"\[(\d+)\]", link)
    return f"pidns{m.group(1)}" if m else None


def new_holder_id(prefix: str = "") -> str:
    """A holder name that says which process holds the lease (host, pid, pid namespace) and is
    unique: ``poller:web-1:4242:9f3a1c@pidns4026531836``."""
    name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    ns = _pid_namespace()
    if ns:
        name += f"@{ns}"
    return f"{prefix}{name}"[:200]


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    except OSError:
        return False
    try:
        # A killed process its parent has not reaped yet is a zombie: it holds nothing.
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def holder_is_gone(holder: str) -> bool:
    """Whether ``holder`` names a process on this host (and pid namespace) that no longer
    runs. Any doubt (another host, an unknown name) means it may still be alive."""
    m = _HOLDER_RE.search(holder or "")
    if m is None or m.group("host") != socket.gethostname():
        return False
    if m.group("ns") != _pid_namespace():
        return False
    pid = int(m.group("pid"))
    return pid != os.getpid() and _process_is_gone(pid)


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
            _lease_event(session, actor, "take_over", name, {"holder": previous.holder}, holder)
        return True
    if previous is not None:
        if holder_is_gone(previous.holder):
            return _take_from_gone_holder(session, name, previous.holder, holder, expires, actor)
        return False
    try:
        with session.begin_nested():
            session.execute(sa.insert(_table).values(name=name, holder=holder, expires_at=expires))
    except IntegrityError:
        # Another replica created the row between our UPDATE and INSERT: it holds the lease.
        return False
    _lease_event(session, actor, "acquire", name, None, holder)
    return True


def _take_from_gone_holder(
    session: Session, name: str, gone: str, holder: str, expires: datetime, actor: Actor
) -> bool:
    # Only from that very holder: another replica may have been quicker.
    result = session.execute(
        sa.update(_table)
        .where(_table.c.name == name, _table.c.holder == gone)
        .values(holder=holder, expires_at=expires)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    logger.info("lease %s taken back from %s, a process on this host that is gone", name, gone)
    before = {"holder": gone, "why": "the holding process on this host is gone"}
    _lease_event(session, actor, "take_over", name, before, holder)
    return True


def _lease_event(
    session: Session,
    actor: Actor,
    action: str,
    name: str,
    before: dict[str, str] | None,
    holder: str | None,
) -> None:
    record_event(
        session,
        actor=actor,
        action=action,
        entity="lease",
        entity_id=name[:64],
        before=before,
        after=None if holder is None else {"holder": holder},
    )


def release_lease(session: Session, *, name: str, holder: str, actor: Actor) -> bool:
    """Give the lease up at once (on a clean stop) so another replica need not wait for expiry."""
    result = session.execute(
        sa.update(_table)
        .where(_table.c.name == name, _table.c.holder == holder)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    released = result.rowcount == 1  # type: ignore[attr-defined]
    if released:
        _lease_event(session, actor, "release", name, {"holder": holder}, None)
    return released


def current_holder(session: Session, name: str, now: datetime | None = None) -> Lease | None:
    """The live lease on ``name``, or None when it is free."""
    lease = session.get(Lease, name)
    if lease is None or lease.expires_at <= (now or utcnow()):
        return None
    return lease
