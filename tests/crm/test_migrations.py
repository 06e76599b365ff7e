from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import crm.models  # noqa: F401
from crm.db import Database, alembic_config, current_revision, head_revision


def test_migrations_build_the_schema_the_models_describe(db: Database):
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []


def test_upgrade_from_empty_down_and_up_again(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(db.engine) is None
    db.upgrade()
    assert current_revision(db.engine) == head_revision()
    db.upgrade()  # a second upgrade is a no-op
    with db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert current_revision(db.engine) is None
    db.upgrade()
    assert current_revision(db.engine) == head_revision()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_production_code_never_calls_create_all():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = [p for d in ("crm", "bot") for p in (root / d).rglob("*.py") if "create_all(" in p.read_text()]
    assert offenders == []


def test_the_history_is_one_line_with_one_head():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1 and "," not in (head_revision() or "")
    # Every revision after the join has one parent: new work continues a single line.
    later = [r for r in script.walk_revisions() if r.revision > "0007"]
    assert all(isinstance(r.down_revision, str) for r in later)


def test_a_database_at_the_two_old_heads_upgrades_to_the_one(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'branched.db'}")
    db.upgrade("0003")
    db.upgrade("0006")
    assert current_revision(db.engine) == "0003,0006"
    db.upgrade()
    assert current_revision(db.engine) == head_revision() and "," not in head_revision()
