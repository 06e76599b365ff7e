from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import crm.models  # noqa: F401
from crm.db import Database, alembic_config, current_revision, downgrade, head_revision
from crm.models.base import compare_column_types


def test_migrations_build_the_schema_the_models_describe(db: Database):
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": compare_column_types}), SQLModel.metadata)
    assert diff == []


def test_upgrade_from_empty_down_and_up_again(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(db.engine) is None
    db.upgrade()
    assert current_revision(db.engine) == head_revision()
    db.upgrade()  # a second upgrade is a no-op
    downgrade(db.engine, "base")
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


def test_sqlite_tables_people_quote_by_id_never_reuse_ids(db: Database):
    """A rebuild of one of these tables by a later migration must keep AUTOINCREMENT."""
    if db.dialect != "sqlite":
        return  # PostgreSQL sequences never go back
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type='table'")
        sql = {name: text for name, text in rows}
    for table in ("users", "customers", "deals", "follow_ups", "interactions"):
        assert "AUTOINCREMENT" in sql[table], table


def test_rebuilding_tables_on_sqlite_keeps_every_row_and_reference(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    db.upgrade("0007")
    with db.engine.begin() as conn:
        now = "2026-01-01 00:00:00.000000"
        conn.exec_driver_sql(
            "INSERT INTO users (id, name, email, role, timezone, active, created_at) "
            f"VALUES (3, 'Rita', 'rita@ourco.com', 'rep', 'UTC', 1, '{now}')"
        )
        for cid in (5, 9):
            conn.exec_driver_sql(
                "INSERT INTO customers (id, name, status, owner_id, name_key, created_at, "
                f"updated_at) VALUES ({cid}, 'C{cid}', 'lead', 3, 'c{cid}', '{now}', '{now}')"
            )
        conn.exec_driver_sql(
            "INSERT INTO deals (id, customer_id, title, amount, currency, stage, owner_id, status, "
            "stage_entered_at, created_at, updated_at) "
            f"VALUES (7, 9, 'Plan', 10, 'EUR', 'lead', 3, 'open', '{now}', '{now}', '{now}')"
        )
        conn.exec_driver_sql(
            "INSERT INTO follow_ups (id, customer_id, deal_id, owner_id, due_at, note, status, "
            "created_at, updated_at) "
            f"VALUES (4, 9, 7, 3, '{now}', 'call', 'open', '{now}', '{now}')"
        )
    db.upgrade()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, owner_id FROM customers ORDER BY id").all() == [
            (5, 3),
            (9, 3),
        ]
        assert conn.exec_driver_sql("SELECT id, customer_id, owner_id FROM deals").all() == [
            (7, 9, 3)
        ]
        assert conn.exec_driver_sql("SELECT id, deal_id FROM follow_ups").all() == [(4, 7)]
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        conn.exec_driver_sql("DELETE FROM customers WHERE id = 9")
        conn.exec_driver_sql(
            "INSERT INTO customers (name, status, name_key, created_at, updated_at) "
            f"VALUES ('New', 'lead', 'new', '{now}', '{now}')"
        )
        assert conn.exec_driver_sql("SELECT max(id) FROM customers").scalar() == 10


def test_the_quick_head_check_agrees_with_alembic(tmp_path):
    from crm.db import shipped_head

    assert shipped_head() == head_revision()
    db = Database(f"sqlite:///{tmp_path / 'quick.db'}")
    assert not db.at_head()  # empty
    db.upgrade("0007")
    assert not db.at_head()
    db.upgrade()
    assert db.at_head()
