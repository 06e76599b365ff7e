"""Backups and restores: a consistent snapshot of the whole store in one file, with a manifest.

A backup file is a tar archive of two members: ``manifest.json`` (format, the database kind,
the schema revision, the rows of every table, the SHA-256 of the data) and the data itself:

- SQLite: a copy made with SQLite's online backup API (``sqlite3.Connection.backup``) in one
  step, so it is one consistent state while other connections keep writing (WAL mode);
- PostgreSQL: ``pg_dump --format=custom`` run on a snapshot exported from a REPEATABLE READ
  transaction, in which the manifest's row counts are taken too: counts and data agree.

``restore`` puts a backup into an empty database of the same kind: it checks the checksum,
refuses a schema newer than this crmbot knows, loads the data, checks every table's rows
against the manifest, then migrates an older schema forward.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from crm import crypto
from crm.db import Database, known_revisions
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.errors import CRMError

FORMAT = 1
MANIFEST = "manifest.json"
DATA = {"sqlite": "data.sqlite", "postgresql": "data.pgdump"}


@dataclass
class Manifest:
    format: int
    dialect: str
    schema_revision: str | None
    created_at: str
    counts: dict[str, int] = field(default_factory=dict)
    data_sha256: str = ""
    data_bytes: int = 0
    # Ids of the encryption keys set when the backup was made (the first encrypts): reading
    # the restored data needs them in CRM_ENCRYPTION_KEYS. Empty: no keys were set.
    encryption_keys: list[str] = field(default_factory=list)


def _tables() -> list[str]:
    return sorted(t.name for t in SQLModel.metadata.sorted_tables)


class _Hashing:
    """A file read through SHA-256, so data is hashed in the pass that copies it."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        chunk: bytes = self.raw.read(n)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


def _sqlite_counts(conn: sqlite3.Connection) -> tuple[dict[str, int], str | None]:
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    counts = {
        t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
        for t in _tables()
        if t in present
    }
    revision = None
    if "alembic_version" in present:
        revision = (
            ",".join(sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version")))
            or None
        )
    return counts, revision


def _libpq(db: Database) -> tuple[str, dict[str, str]]:
    """The URL for the PostgreSQL tools, and their environment: the password goes in
    PGPASSWORD, never on a command line that every user of the machine can list."""
    url = make_url(db.url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise CRMError(f"{name} is not installed.", hint="Install the PostgreSQL client tools.")
    return found


def _run_tool(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise CRMError(f"{Path(args[0]).name}: {first}")


def make_backup(db: Database, target: Path, *, actor: Actor) -> Manifest:
    """Write a backup of the whole store to ``target`` (replaced atomically when done)."""
    actor.require_admin("make backups (a backup holds everyone's data)")
    target = target.expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".crmbot-backup-") as tmp:
        data = Path(tmp) / DATA[db.dialect]
        if db.dialect == "sqlite":
            counts, revision = _backup_sqlite(db, data)
        elif db.dialect == "postgresql":
            counts, revision = _backup_postgres(db, data)
        else:
            raise CRMError(f"Backups of {db.dialect} databases are not supported.")
        partial = Path(tmp) / "backup.tar"
        with tarfile.open(partial, "w") as tar, data.open("rb") as raw:
            # The data is hashed as it is written (one pass); the manifest follows it.
            hashing = _Hashing(raw)
            tar.addfile(tar.gettarinfo(str(data), arcname=data.name), hashing)
            manifest = Manifest(
                format=FORMAT,
                dialect=db.dialect,
                schema_revision=revision,
                created_at=datetime.now(UTC).isoformat(),
                counts=counts,
                data_sha256=hashing.digest.hexdigest(),
                data_bytes=hashing.size,
                encryption_keys=list(ring.ids) if (ring := crypto.keyring()) else [],
            )
            body = json.dumps(asdict(manifest), indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        os.replace(partial, target)
    with db.transaction() as session:
        record_event(
            session,
            actor=actor,
            action="backup",
            entity="store",
            after={
                "file": target.name,
                "sha256": manifest.data_sha256,
                "rows": sum(counts.values()),
            },
        )
    return manifest


def _backup_sqlite(db: Database, data: Path) -> tuple[dict[str, int], str | None]:
    source = db.engine.raw_connection()
    try:
        copy = sqlite3.connect(data)
        try:
            # In one step (pages=-1): one read transaction, so one consistent state.
            source.driver_connection.backup(copy)  # type: ignore[union-attr]
            return _sqlite_counts(copy)
        finally:
            copy.close()
    finally:
        source.close()


def _backup_postgres(db: Database, data: Path) -> tuple[dict[str, int], str | None]:
    pg_dump = _pg_tool("pg_dump")
    url, env = _libpq(db)
    repeatable = db.engine.execution_options(isolation_level="REPEATABLE READ")
    with repeatable.connect() as conn, conn.begin():
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        counts = {
            t: int(conn.exec_driver_sql(f'SELECT count(*) FROM "{t}"').scalar_one())
            for t in _tables()
        }
        revision = (
            ",".join(
                sorted(
                    r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                )
            )
            or None
        )
        # pg_dump reads the very snapshot the counts were taken in, while it is held open.
        _run_tool(
            [
                pg_dump,
                "--format=custom",
                "--no-owner",
                f"--snapshot={snapshot}",
                "--file",
                str(data),
                url,
            ],
            env,
        )
    return counts, revision


# ---------------------------------------------------------------- restore


def read_manifest(path: Path) -> Manifest:
    try:
        with tarfile.open(path.expanduser(), "r") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            raw = json.loads(member.read())
    except FileNotFoundError:
        raise CRMError(f"{path}: no such file.") from None
    except (OSError, KeyError, tarfile.TarError, ValueError):
        raise CRMError(f"{path} is not a crmbot backup (no readable manifest).") from None
    try:
        return Manifest(**raw)
    except TypeError:
        raise CRMError(f"{path} has a manifest this crmbot cannot read.") from None


def has_users(db: Database) -> bool:
    return "users" in sa.inspect(db.engine).get_table_names()


def _is_empty(db: Database) -> bool:
    return not sa.inspect(db.engine).get_table_names()


def restore_backup(db: Database, source: Path, *, actor: Actor) -> Manifest:
    """Load a backup into an empty database of the same kind; the counts must match."""
    actor.require_admin("restore backups")
    manifest = read_manifest(source)
    if manifest.format != FORMAT:
        raise CRMError(f"Backup format {manifest.format} is not one this crmbot reads ({FORMAT}).")
    if manifest.dialect != db.dialect:
        raise CRMError(
            f"This is a {manifest.dialect} backup; the target database is {db.dialect}.",
            hint="Restore into a database of the same kind.",
        )
    known = known_revisions()
    if manifest.schema_revision and not set(manifest.schema_revision.split(",")) <= known:
        raise CRMError(
            f"The backup's schema ({manifest.schema_revision}) is newer than this crmbot knows.",
            hint="Restore it with the crmbot version that made it, or a newer one.",
        )
    if not _is_empty(db):
        raise CRMError(
            "The target database is not empty.", hint="Restore into a new, empty database."
        )
    with tempfile.TemporaryDirectory(prefix=".crmbot-restore-") as tmp:
        name = DATA[manifest.dialect]
        data = Path(tmp) / name
        with tarfile.open(source.expanduser(), "r") as tar:
            member = tar.extractfile(name)
            if member is None:
                raise CRMError(f"{source} holds no {name}: the file is damaged.")
            hashing = _Hashing(member)
            with data.open("wb") as out:
                shutil.copyfileobj(hashing, out, 1 << 20)  # type: ignore[misc]
        if hashing.digest.hexdigest() != manifest.data_sha256:
            raise CRMError("The backup's data does not match its checksum: the file is damaged.")
        if db.dialect == "sqlite":
            # Straight into the file, not through the store's WAL: the pages are written once.
            db.engine.dispose()
            src = sqlite3.connect(data)
            target = sqlite3.connect(make_url(db.url).database or "")
            try:
                src.backup(target)
            finally:
                target.close()
                src.close()
        else:
            url, env = _libpq(db)
            _run_tool(
                [
                    _pg_tool("pg_restore"),
                    "--no-owner",
                    "--exit-on-error",
                    "--single-transaction",
                    "--dbname",
                    url,
                    str(data),
                ],
                env,
            )
    db.engine.dispose()  # connections opened before the load may cache the empty schema
    with db.engine.connect() as conn:
        for table, expected in manifest.counts.items():
            found = conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one()
            if found != expected:
                raise CRMError(f"Restored {table} has {found} rows; the backup says {expected}.")
    if not db.at_head():
        db.upgrade()
    with db.transaction() as session:
        record_event(
            session,
            actor=actor,
            action="restore",
            entity="store",
            after={
                "file": source.name,
                "sha256": manifest.data_sha256,
                "schema_revision": manifest.schema_revision,
                "made_at": manifest.created_at,
            },
        )
    return manifest


def prune_backups(folder: Path, keep: int, prefix: str = "crmbot-") -> list[Path]:
    """Delete the oldest scheduled backups in ``folder`` beyond the newest ``keep``."""
    backups = sorted(folder.glob(f"{prefix}*.tar"))
    doomed = backups[: max(0, len(backups) - keep)]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def scheduled_name(now: datetime, prefix: str = "crmbot-") -> str:
    return f"{prefix}{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.tar"


def missing_keys(manifest: Manifest) -> list[str]:
    """The backup's encryption keys that CRM_ENCRYPTION_KEYS does not hold now."""
    ring = crypto.keyring()
    held = set(ring.ids) if ring else set()
    return [k for k in manifest.encryption_keys if k not in held]


def describe(manifest: Manifest) -> dict[str, Any]:
    return {**asdict(manifest), "missing_keys": missing_keys(manifest)}
