"""Engine, sessions and schema migrations.

One ``Database`` per process, built from the settings. Units of work use
``with db.transaction() as session:`` (commits on success, rolls back on any error),
``with db.session() as session:`` for reads, or ``with db.lookup() as session:`` for the
quick reads of an interactive request.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# A pooled PostgreSQL connection idle for longer than this is checked with a round trip before
# it is handed out (the same rule and default as PgBouncer's server_check_delay). A connection
# in steady use is not: a ping per checkout would add a round trip to every request.
IDLE_CHECK_SECONDS = 30.0


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below) so write units can take the lock up front.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Deleted rows are overwritten, not just unlinked: erased personal data must not linger
        # in free pages of the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A deferred transaction that reads and then writes can fail with SQLITE_BUSY when
        # another writer got in between; write units start IMMEDIATE and wait their turn.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def _committed(session: Session) -> Iterator[Session]:
    """The session's work committed when its block ends, rolled back when it raises."""
    with session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _check_idle_connections(engine)
    return engine


def _check_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before reuse only when it has been idle a while.

    A server restart or an idle timeout closes connections that sit in the pool; the ping
    finds those and the pool replaces them (SQLAlchemy's documented checkout-event recipe).
    """

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_CHECK_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_conn, None):
                raise sa.exc.DisconnectionError(str(exc)) from exc
            raise


def _share_disconnects(*engines: Engine) -> None:
    """When one pool finds the server gone (a restart, a failover), the others drop their
    connections too, so that each pool does not fail a request of its own to find out."""
    for engine in engines:

        @sa.event.listens_for(engine, "handle_error")
        def _on_error(context: Any, _source: Engine = engine) -> None:
            if context.is_disconnect:
                for other in engines:
                    if other is not _source:
                        other.dispose(close=False)


class _WriteGate:
    """Write units on one SQLite file take turns here before SQLite's own lock.

    SQLite lets one writer in at a time and makes the others poll, sleeping longer after each
    try (up to 100 ms a time), so under many short writes at once (every Slack request records
    its signature) a few wait hundreds of milliseconds for a lock that was free after one. Here
    the threads of a process queue on a lock that wakes the next at once, and the processes on
    a lock file beside the database, polled every few milliseconds. Only crmbot's own writers
    take it; any other keeps SQLite's rules, which still decide.
    """

    POLL_SECONDS = 0.002
    TIMEOUT_SECONDS = 30.0  # as SQLite's busy timeout: then SQLite's own wait takes over

    def __init__(self, database: str) -> None:
        self._path = Path(database).expanduser().with_name(Path(database).name + ".write-lock")
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        # One descriptor per process (a forked worker opens its own: a lock belongs to it).
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        import fcntl

        deadline = time.monotonic() + self.TIMEOUT_SECONDS
        if not self._threads.acquire(timeout=self.TIMEOUT_SECONDS):
            yield  # as before the gate: SQLite's busy wait decides
            return
        locked = False
        try:
            try:
                fd = self._file()
            except OSError:  # a read-only folder: no lock file, SQLite's rules alone
                fd = None
            while fd is not None and not locked:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(self.POLL_SECONDS)
            yield
        finally:
            if locked and fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self._threads.release()


class Database:
    """The store: an engine plus sessions per unit of work."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = normalise_url(url)
        postgres = make_url(self.url).get_backend_name() == "postgresql"
        # Writes, scheduled jobs and analytics: fewer at once than interactive lookups.
        main_kwargs = (
            {"pool_size": 5, "max_overflow": 15, **engine_kwargs} if postgres else engine_kwargs
        )
        self.engine = create_db_engine(self.url, **main_kwargs)
        self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        # Lookups on PostgreSQL run without a transaction: no BEGIN and no ROLLBACK round trips.
        # Their connections stay in autocommit mode (a pool of their own, so that no connection
        # switches modes at every checkout). Both pools together stay at 15 idle and 40 open
        # connections at most per process.
        self._lookup_engine = self.engine
        if postgres:
            lookup_kwargs = {"pool_size": 10, "max_overflow": 10, **engine_kwargs}
            lookup_kwargs["isolation_level"] = "AUTOCOMMIT"
            self._lookup_engine = create_db_engine(self.url, **lookup_kwargs)
            _share_disconnects(self.engine, self._lookup_engine)
        database = make_url(self.url).database
        self._gate = (
            _WriteGate(database)
            if not postgres
            and database
            and database != ":memory:"
            and os.name == "posix"
            and not database.startswith("file:")
            else None
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session, in a transaction that is rolled back at the end (large results can
        stream through a server-side cursor)."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def lookup(self) -> Iterator[Session]:
        """A session for the short reads of an interactive request (a Slack command, a button).

        On PostgreSQL it opens no transaction: each statement sees the latest committed data,
        and a request saves the BEGIN and ROLLBACK round trips. Reads that must agree with each
        other over many statements, or stream large results, use ``session()``. Write only in
        ``transaction()``.
        """
        with Session(self._lookup_engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def transaction(self, *, attach: dict[str, str] | None = None) -> Iterator[Session]:
        """A write unit: everything in it commits together or not at all. ``attach`` (SQLite
        only): other SQLite files to attach for its length, by alias (SQLite attaches only
        outside a transaction, so before it begins; they are detached after it ends)."""
        if not attach:
            with _committed(Session(self._write_engine, expire_on_commit=False)) as session:
                yield session
            return
        if self.dialect != "sqlite":
            raise ValueError("only a SQLite store attaches other files")
        with self._write_engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            for alias, path in attach.items():
                raw.execute(f'ATTACH DATABASE ? AS "{alias}"', (path,))
            try:
                with _committed(Session(bind=connection, expire_on_commit=False)) as session:
                    yield session
            finally:
                for alias in attach:
                    raw.execute(f'DETACH DATABASE "{alias}"')

    @contextmanager
    def quick_write(self) -> Iterator[sa.Connection]:
        """A write unit of a few Core statements and nothing else, on the path of an
        interactive request: no ORM session (its cost is most of such a unit's), and nothing
        inside it waits on anything but the store. On a SQLite file these units take turns on
        a lock of their own first, so that many at once queue instead of polling SQLite's."""
        turn = self._gate.turn() if self._gate is not None else contextlib.nullcontext()
        with turn, self._write_engine.begin() as connection:
            yield connection

    def upgrade(self, revision: str = "heads") -> None:
        upgrade(self.engine, revision)

    def at_head(self) -> bool:
        """Whether the schema is at the newest revision this crmbot ships (one quick query,
        without loading Alembic): commands migrate only when it is not."""
        try:
            with self.engine.connect() as connection:
                rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        except sa.exc.DBAPIError:  # an empty database has no such table yet
            return False
        return ",".join(sorted(r[0] for r in rows)) == shipped_head()

    def flush_deleted(self) -> None:
        """After an erasure: on SQLite, copy the write-ahead log into the file and empty it, so
        that old copies of erased rows leave the log too (secure_delete zeroes them in the
        file). On PostgreSQL dead rows are invisible at once, and their space is reused by
        autovacuum."""
        if self.dialect == "sqlite":
            # Outside any transaction (our connections BEGIN on first use): the driver's own.
            connection = self.engine.raw_connection()
            try:
                connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
            finally:
                connection.close()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lookup_engine is not self.engine:
            self._lookup_engine.dispose()


def alembic_config(connection: sa.Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def migrating(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction for migrations.

    On SQLite, foreign keys are not enforced meanwhile: rebuilding a table (Alembic's batch
    mode) drops the old one, and an enforced drop would first delete its rows and cascade to
    the children. Every reference is checked before the commit instead.
    """
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            # Outside any transaction (SQLite ignores this pragma inside one): the driver's own
            # connection, before SQLAlchemy begins.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken references: {broken[:5]}")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` with the migrations shipped in the package."""
    from alembic import command

    with migrating(engine) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` ("base": empty)."""
    from alembic import command

    with migrating(engine) as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision(s) the database is at, comma-separated, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None


_REVISION = re.compile(r"^revision\b[^=\n]*=\s*[\"'](\w+)[\"']", re.MULTILINE)
_PARENTS = re.compile(r"^down_revision\b[^=\n]*=\s*(.+)$", re.MULTILINE)


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every schema revision this crmbot ships (a backup of a later one cannot be restored)."""
    found = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        if match := _REVISION.search(path.read_text(encoding="utf-8")):
            found.add(match.group(1))
    return frozenset(found)


@functools.cache
def shipped_head() -> str | None:
    """The newest revision(s) this crmbot ships, read from the migration files with two
    regular expressions instead of Alembic (which takes longer to load than most commands take
    to run). ``head_revision`` is the reference; a test holds the two equal."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if found := _REVISION.search(text):
            revisions.add(found.group(1))
        if down := _PARENTS.search(text):
            parents.update(re.findall(r"[\"'](\w+)[\"']", down.group(1)))
    return ",".join(sorted(revisions - parents)) or None


def head_revision() -> str | None:
    """The newest revision(s) this crmbot ships, comma-separated."""
    from alembic.script import ScriptDirectory

    return ",".join(sorted(ScriptDirectory.from_config(alembic_config()).get_heads())) or None
