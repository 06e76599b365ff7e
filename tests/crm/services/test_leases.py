"""Leases: a crashed holder on this host gives the lease back at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from crm.models import AuditEvent, Lease
from crm.services import leases
from crm.services.actor import Actor

ACTOR = Actor.system("test")
TTL = timedelta(minutes=5)


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _holder(host: str, pid: int) -> str:
    name = leases.new_holder_id("poller:")
    ns = name.split("@", 1)[1] if "@" in name else None
    return f"poller:{host}:{pid}:abc123" + (f"@{ns}" if ns else "")


def _take(db, name: str, holder: str) -> bool:
    with db.transaction() as session:
        return leases.acquire_lease(
            session, name=name, holder=holder, ttl=TTL, actor=ACTOR, now=datetime.now(UTC)
        )


def test_a_lease_held_by_a_process_on_this_host_that_is_gone_is_taken_at_once(db):
    dead = _holder(socket.gethostname(), _gone_pid())
    assert _take(db, "mailbox:a", dead)
    assert _take(db, "mailbox:a", leases.new_holder_id("poller:"))
    with db.session() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "take_over")).one()
    assert event.before["holder"] == dead and "gone" in event.before["why"]


def test_a_live_process_or_another_host_keeps_the_lease_until_it_runs_out(db):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = _holder(socket.gethostname(), sleeper.pid)
        assert _take(db, "mailbox:b", live)
        assert not _take(db, "mailbox:b", leases.new_holder_id("poller:"))
    finally:
        sleeper.kill()
        sleeper.wait()
    elsewhere = _holder("another-host.example", _gone_pid())
    assert _take(db, "mailbox:c", elsewhere)
    assert not _take(db, "mailbox:c", leases.new_holder_id("poller:"))
    # This very process holds it under another name (a second poller in one process).
    assert _take(db, "mailbox:d", _holder(socket.gethostname(), os.getpid()))
    assert not _take(db, "mailbox:d", leases.new_holder_id("poller:"))
    with db.session() as session:
        assert session.get(Lease, "mailbox:b").holder == live
