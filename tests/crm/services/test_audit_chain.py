"""The audit trail is a hash chain: editing, deleting or slipping in an event is found."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import sqlalchemy as sa

from crm.db import Database
from crm.models import AuditEvent, CustomerUpdate
from crm.services import audit as audit_svc
from crm.services import customers as customer_svc
from crm.services.actor import Actor
from tests.factories import add_customer

EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]


def _some_history(db: Database, admin: Actor) -> list[int]:
    """A few customers, each added and changed: events through the services."""
    ids = []
    for n in range(4):
        c = add_customer(db, admin, name=f"Person {n}", email=f"p{n}@acme{n}.com")
        with db.transaction() as session:
            customer_svc.update_customer(
                session, actor=admin, customer_id=c.id, changes=CustomerUpdate(company=f"Co {n}")
            )
        ids.append(c.id)
    return ids


def _verify(db: Database) -> audit_svc.ChainReport:
    with db.session() as session:
        return audit_svc.verify_chain(session)


def _event_ids(db: Database) -> list[int]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.select(EVENTS.c.id).order_by(EVENTS.c.seq)).scalars())


def test_events_written_by_the_services_form_a_chain_that_verifies(db, admin):
    _some_history(db, admin)
    report = _verify(db)
    assert report.ok, report.broken
    assert report.events == len(_event_ids(db)) >= 8
    assert report.head_seq == report.events


def test_editing_one_event_is_found_at_that_event(db, admin):
    _some_history(db, admin)
    ids = _event_ids(db)
    target = ids[3]
    with db.engine.begin() as conn:
        conn.execute(EVENTS.update().where(EVENTS.c.id == target).values(actor="someone-else"))
    report = _verify(db)
    assert not report.ok
    assert report.broken.event_id == target
    assert "changed" in report.broken.problem


def test_editing_a_payload_and_its_digest_is_found_by_the_next_link(db, admin):
    _some_history(db, admin)
    ids = _event_ids(db)
    target = ids[2]
    with db.engine.begin() as conn:
        row = conn.execute(sa.select(EVENTS).where(EVENTS.c.id == target)).one()
        after = dict(row.after or {}) | {"name": "Forged"}
        digest = audit_svc.event_digest(
            at=row.at,
            actor=row.actor,
            action=row.action,
            entity=row.entity,
            entity_id=row.entity_id,
            payload=audit_svc.payload_digest(row.before, after),
        )
        conn.execute(
            EVENTS.update().where(EVENTS.c.id == target).values(after=after, digest=digest)
        )
    report = _verify(db)
    assert report.broken is not None and report.broken.event_id == target
    assert "link" in report.broken.problem


def test_deleting_an_event_in_the_middle_is_found_at_the_next_one(db, admin):
    _some_history(db, admin)
    ids = _event_ids(db)
    with db.engine.begin() as conn:
        conn.execute(EVENTS.delete().where(EVENTS.c.id == ids[4]))
    report = _verify(db)
    assert report.broken is not None and report.broken.event_id == ids[5]
    assert "missing" in report.broken.problem


def test_deleting_the_newest_events_is_found_through_the_head(db, admin):
    _some_history(db, admin)
    ids = _event_ids(db)
    with db.engine.begin() as conn:
        conn.execute(EVENTS.delete().where(EVENTS.c.id.in_(ids[-2:])))
    report = _verify(db)
    assert report.broken is not None and "newest" in report.broken.problem


def test_an_event_slipped_in_outside_crmbot_is_found(db, admin):
    _some_history(db, admin)
    with db.engine.begin() as conn:
        conn.execute(
            EVENTS.insert().values(
                at=datetime.now(UTC), actor="x", action="update", entity="customer", entity_id="1"
            )
        )
    report = _verify(db)
    assert report.broken is not None and "not in the chain" in report.broken.problem


def test_concurrent_writers_each_take_the_next_link(db, admin):
    """Writers on several connections at once: the chain stays one line with no gaps."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for k in range(5):
                add_customer(db, admin, name=f"W{n} {k}", email=f"w{n}.{k}@firm{n}.com")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = _verify(db)
    assert report.ok, report.broken
    assert report.events == report.head_seq >= 20


def test_the_migration_chains_the_events_stored_before_it(tmp_path):
    from crm import crypto
    from crm.db import downgrade

    crypto.use_keys(None)  # it goes back to a schema from before encryption at rest

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    db.upgrade("0012")
    with db.engine.begin() as conn:
        for n, at in enumerate(["2026-01-01 10:00:00.000000", "2026-01-02 11:30:00.123456"]):
            conn.exec_driver_sql(
                "INSERT INTO audit_events (at, actor, action, entity, entity_id, before, after) "
                "VALUES (?, 'cli', 'update', 'customer', ?, NULL, ?)",
                (at, str(n), json.dumps({"name": f"Old {n}", "n": {"1": [1.5, None]}})),
            )
    db.upgrade()
    report = _verify(db)
    assert report.ok, report.broken
    assert report.events == 2
    # New events continue the chain the migration started.
    add_customer(db, Actor.system("test"), name="New", email="new@new.com")
    report = _verify(db)
    assert report.ok and report.events == 3
    downgrade(db.engine, "0012")
    db.dispose()
