"""Backups while crmbot writes, restored into an empty database: the same rows come back."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from crm.db import Database, normalise_url
from crm.models import AuditEvent, Customer
from crm.services import audit as audit_svc
from crm.services import backups
from crm.services.actor import Actor
from crm.services.errors import CRMError
from tests.conftest import PG_URL
from tests.factories import add_customer

CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]


@pytest.fixture
def empty_target(db: Database, tmp_path: Path) -> Iterator[Database]:
    """A new, empty database of the same kind as ``db``."""
    if db.dialect == "sqlite":
        target = Database(f"sqlite:///{tmp_path / 'restored.db'}")
        yield target
        target.dispose()
        return
    base = make_url(normalise_url(PG_URL or ""))
    name = f"crmbot_restore_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    target = Database(base.set(database=name).render_as_string(hide_password=False))
    try:
        yield target
    finally:
        target.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _rows(db: Database, table: sa.Table, ids: list[int]) -> list[tuple]:
    with db.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(sa.select(table).where(table.c.id.in_(ids)).order_by(table.c.id))
        ]


def test_a_backup_taken_during_writes_restores_the_same_rows(db, admin, empty_target, tmp_path):
    for n in range(30):
        add_customer(db, admin, name=f"Before {n}", email=f"before{n}@firm{n}.com")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            written.append(
                add_customer(db, admin, name=f"During {n}", email=f"during{n}@x{n}.com").id
            )
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:  # the backup starts while writes are going on
            threading.Event().wait(0.01)
        manifest = backups.make_backup(db, tmp_path / "b" / "crm.tar", actor=admin)
        mark = len(written)
        while len(written) < mark + 3:  # and go on after it
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join()
    # The backup holds some of the writes made meanwhile, and not those made after it.
    assert 5 <= manifest.counts["customers"] - 30 < len(written)

    restored = backups.restore_backup(empty_target, tmp_path / "b" / "crm.tar", actor=admin)
    assert restored.counts == manifest.counts
    with empty_target.engine.connect() as conn:
        for table, count in manifest.counts.items():
            extra = 1 if table == "audit_events" else 0  # the restore's own audit event
            assert (
                conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one()
                == count + extra
            )
        ids = list(conn.execute(sa.select(CUSTOMERS.c.id).order_by(CUSTOMERS.c.id)).scalars())
        event_ids = list(conn.execute(sa.select(EVENTS.c.id).order_by(EVENTS.c.id)).scalars())
    sample = ids[::3]
    assert _rows(empty_target, CUSTOMERS, sample) == _rows(db, CUSTOMERS, sample)
    assert _rows(empty_target, EVENTS, event_ids[:-1][::4]) == _rows(
        db, EVENTS, event_ids[:-1][::4]
    )
    with empty_target.session() as session:
        report = audit_svc.verify_chain(session)
    assert report.ok, report.broken
    with empty_target.session() as session:
        actions = list(
            session.execute(
                sa.select(EVENTS.c.action).order_by(EVENTS.c.seq.desc()).limit(1)
            ).scalars()
        )
    assert actions == ["restore"]


def test_restore_refuses_a_full_target_a_newer_schema_a_damaged_file_and_non_admins(
    db, admin, empty_target, tmp_path
):
    add_customer(db, admin)
    path = tmp_path / "crm.tar"
    backups.make_backup(db, path, actor=admin)
    with pytest.raises(CRMError, match="admins"):
        backups.make_backup(db, tmp_path / "x.tar", actor=Actor("rep", role="rep"))  # type: ignore[arg-type]
    with pytest.raises(CRMError, match="not empty"):
        backups.restore_backup(db, path, actor=admin)

    def rewritten(name: str, change) -> Path:  # noqa: ANN001
        out = tmp_path / name
        with tarfile.open(path) as src, tarfile.open(out, "w") as dst:
            for member in src.getmembers():
                body = src.extractfile(member).read()
                body = change(member.name, body)
                member.size = len(body)
                dst.addfile(member, io.BytesIO(body))
        return out

    def newer(name: str, body: bytes) -> bytes:
        if name != "manifest.json":
            return body
        return json.dumps(json.loads(body) | {"schema_revision": "9999"}).encode()

    with pytest.raises(CRMError, match="newer than this crmbot"):
        backups.restore_backup(empty_target, rewritten("newer.tar", newer), actor=admin)

    def damaged(name: str, body: bytes) -> bytes:
        return body if name == "manifest.json" else body[:-10] + b"x" * 10

    with pytest.raises(CRMError, match="checksum"):
        backups.restore_backup(empty_target, rewritten("damaged.tar", damaged), actor=admin)
    with pytest.raises(CRMError, match="not a crmbot backup"):
        (tmp_path / "junk.tar").write_bytes(b"junk")
        backups.restore_backup(empty_target, tmp_path / "junk.tar", actor=admin)
    # Nothing was written to the target by the refusals.
    assert not sa.inspect(empty_target.engine).get_table_names()


def test_scheduled_backups_keep_the_newest_n(tmp_path):
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    for day in range(5):
        (tmp_path / backups.scheduled_name(start + timedelta(days=day))).write_bytes(b"x")
    (tmp_path / "other.tar").write_bytes(b"keep me")
    gone = backups.prune_backups(tmp_path, keep=3)
    assert [p.name for p in gone] == [
        backups.scheduled_name(start + timedelta(days=d)) for d in (0, 1)
    ]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [backups.scheduled_name(start + timedelta(days=d)) for d in (2, 3, 4)] + ["other.tar"]
    )


def test_an_encrypted_store_backs_up_sealed_and_restores_readable_with_its_keys(
    db, admin, empty_target, tmp_path
):
    from crm import crypto
    from crm.models import ContactPoint
    from crm.services.customers import find_by_email

    key = crypto.generate_key()
    crypto.use_keys([key])
    customer = add_customer(db, admin, "Mair Evans", "mair.evans@tregaron-example.org")
    manifest = backups.make_backup(db, tmp_path / "sealed.tar", actor=admin)
    assert manifest.encryption_keys == [crypto.key_id(key)]
    with tarfile.open(tmp_path / "sealed.tar") as tar:
        data = b"".join(
            tar.extractfile(m).read() for m in tar.getmembers() if m.name != "manifest.json"  # type: ignore[union-attr]
        )
    assert b"mair.evans" not in data  # the backup holds the sealed form
    crypto.use_keys(None)
    assert backups.missing_keys(manifest) == [crypto.key_id(key)]
    backups.restore_backup(empty_target, tmp_path / "sealed.tar", actor=admin)
    crypto.use_keys([key])
    assert backups.describe(manifest)["missing_keys"] == []
    with empty_target.session() as session:
        found = find_by_email(session, "mair.evans@tregaron-example.org")
        assert found is not None and found.id == customer.id
        point = session.exec(sa.select(ContactPoint).where(ContactPoint.customer_id == customer.id)).scalar_one()
        assert point.value == "mair.evans@tregaron-example.org"
