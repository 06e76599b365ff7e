"""The store's connection handling on PostgreSQL: reads without a transaction, idle checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from sqlmodel import Session

from crm import db as db_module
from crm.db import Database


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url, pool_size=1, max_overflow=0)
    yield database
    database.dispose()


def _backend_pid(database: Database) -> int:
    with database.lookup() as session:
        return int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(postgres_url: str, pid: int) -> None:
    other = Database(postgres_url)
    with other.transaction() as session:
        session.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def _status(session: Session) -> TransactionStatus:
    return session.connection().connection.dbapi_connection.info.transaction_status  # type: ignore[union-attr,no-any-return]


def test_a_lookup_opens_no_transaction_and_a_read_session_does(pg: Database) -> None:
    with pg.lookup() as session:
        session.execute(sa.text("SELECT 1")).scalar_one()
        assert _status(session) == TransactionStatus.IDLE  # in a transaction it would be INTRANS
    with pg.session() as session:
        # One consistent view, and large results can stream through a server-side cursor.
        rows = session.execute(
            sa.text("SELECT generate_series(1, 5000)"), execution_options={"yield_per": 1000}
        )
        assert sum(1 for _ in rows) == 5000
        assert _status(session) == TransactionStatus.INTRANS
    with pg.transaction() as session:
        session.execute(sa.text("SELECT 1")).scalar_one()
        assert _status(session) == TransactionStatus.INTRANS


def test_an_idle_connection_the_server_closed_is_replaced_before_use(
    pg: Database, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(pg)
    _terminate(postgres_url, first)
    monkeypatch.setattr(db_module, "IDLE_CHECK_SECONDS", 0.0)  # the pooled one counts as idle
    second = _backend_pid(pg)  # no error: the check found it dead and the pool replaced it
    assert second != first


def test_a_connection_in_steady_use_is_not_pinged(pg: Database, postgres_url: str) -> None:
    # Within the idle window a dead connection is found by the request that uses it: that
    # request fails, and the pool is renewed for the next one.
    first = _backend_pid(pg)
    _terminate(postgres_url, first)
    with pytest.raises(sa.exc.OperationalError):
        _backend_pid(pg)
    assert _backend_pid(pg) != first


def test_a_lost_server_found_by_one_pool_renews_the_other(pg: Database, postgres_url: str) -> None:
    looked_up = _backend_pid(pg)
    with pg.session() as session:
        read = int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
    _terminate(postgres_url, looked_up)
    _terminate(postgres_url, read)
    with pytest.raises(sa.exc.OperationalError), pg.session() as session:
        session.execute(sa.text("SELECT 1")).scalar_one()  # this pool finds the server gone
    assert _backend_pid(pg) != looked_up  # and the lookup pool needs no failed request of its own


def test_quick_writes_at_once_from_many_threads_all_land_and_a_repeat_is_seen_once(db) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from crm.services import replays

    def sight(key: str) -> bool:
        with db.quick_write() as connection:
            return replays.first_sighting(connection, key=key)

    keys = [f"request-{n % 10}" for n in range(80)]  # each key sent eight times
    with ThreadPoolExecutor(16) as pool:
        firsts = list(pool.map(sight, keys))
    assert sum(firsts) == 10
    assert {k for k, first in zip(keys, firsts, strict=True) if first} == set(keys)


def test_a_failed_quick_write_leaves_nothing_and_frees_the_turn(db) -> None:
    from crm.services import replays

    with pytest.raises(RuntimeError), db.quick_write() as connection:
        replays.first_sighting(connection, key="half-done")
        raise RuntimeError("boom")
    with db.quick_write() as connection:  # the turn was given back
        assert replays.first_sighting(connection, key="half-done")
