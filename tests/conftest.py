"""Shared fixtures: every store test runs on SQLite, and on PostgreSQL when CRM_TEST_DATABASE_URL is set.

PostgreSQL: one throwaway database per test process (created here, dropped at the end),
migrated once; tables are emptied after each test. SQLite: migrated once into a template
file that each test copies.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from crm.config import Settings
from crm.db import Database, normalise_url
from crm.models import Role, User
from crm.services.actor import Actor

PG_URL = os.environ.get("CRM_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's CRM_ or SLACK_ variables, nor a .env file."""
    for name in list(os.environ):
        if (name.startswith("CRM_") and name != "CRM_TEST_DATABASE_URL") or name.startswith(
            "SLACK_"
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


# Set to a comma-separated list of Fernet keys to run every test with encryption at rest on.
TEST_ENCRYPTION_KEYS = os.environ.get("CRM_TEST_ENCRYPTION_KEYS", "")


@pytest.fixture(autouse=True)
def _keys(_isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with the suite's encryption keys (none by default) and leaves none set."""
    from crm import crypto

    if TEST_ENCRYPTION_KEYS:
        monkeypatch.setenv("CRM_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEYS)
    crypto.use_keys(crypto.parse_keys(TEST_ENCRYPTION_KEYS))
    yield
    crypto.use_keys(None)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("CRM_TEST_DATABASE_URL is not set")
    base = make_url(normalise_url(PG_URL))
    name = f"crmbot_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    from crm import crypto

    with crypto.plain():  # the store's own key is made here: readable whatever keys a test sets
        Database(url).upgrade()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "crm.db"
    db = Database(f"sqlite:///{path}")
    from crm import crypto

    with crypto.plain():
        db.upgrade()
    db.dispose()
    return path


def _empty_tables(db: Database) -> None:
    from crm.services.search import forget_indexes

    forget_indexes()  # ids restart below: cached name indexes would describe rows that are gone
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "crm.db"
        shutil.copy(sqlite_template, path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
    else:
        database = Database(request.getfixturevalue("postgres_url"))
        try:
            yield database
        finally:
            _empty_tables(database)
            database.dispose()


@pytest.fixture
def settings(db: Database) -> Settings:
    return Settings(
        _env_file=None,
        database_url=db.url,
        timezone="Europe/Berlin",  # type: ignore[call-arg]
        internal_domains=["ourco.com"],
    )


@pytest.fixture
def admin() -> Actor:
    return Actor.system("test-admin")


def make_user(db: Database, name: str, role: Role, email: str | None = None) -> tuple[User, Actor]:
    with db.transaction() as session:
        user = User(
            name=name,
            email=email or f"{name.lower().replace(' ', '.')}@ourco.com",
            role=role,
            timezone="Europe/Berlin",
        )
        session.add(user)
        session.flush()
        actor = Actor(name=f"test:{user.name}", role=role, user_id=user.id)
    return user, actor


@pytest.fixture
def crmbot(db: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run the crmbot command line in-process on the test database: (exit code, stdout, stderr).

    A test module that needs more settings overrides this fixture and sets them first.
    """
    from bot.cli.main import main

    monkeypatch.setenv("CRM_DATABASE_URL", db.url)

    def run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
