from __future__ import annotations

from datetime import UTC, date, datetime

from crm.analytics.columns import NEVER_AFTER, Column, micros, read_columns
from crm.models import Channel, Deal, DealStatus, Direction
from tests.crm.analytics.analytics_data import customer, deal, interaction

LATE_IN_A_SECOND = datetime(2025, 12, 21, 11, 31, 20, 999_988, tzinfo=UTC)
LAST_OF_THE_YEAR = datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def test_times_and_dates_are_read_to_the_microsecond(db):
    # A fraction just under a whole second must not round up to the next second.
    cid = customer(db, "Ana", datetime(2025, 1, 1, tzinfo=UTC))
    interaction(db, cid, LATE_IN_A_SECOND, Channel.email, Direction.inbound)
    interaction(db, cid, LAST_OF_THE_YEAR, Channel.note, Direction.internal)
    dated = deal(db, cid, datetime(2025, 2, 1, tzinfo=UTC), DealStatus.open, "10")
    undated = deal(db, cid, datetime(2025, 2, 2, tzinfo=UTC), DealStatus.open, "10")
    with db.transaction() as session:
        session.get(Deal, dated).expected_close_date = date(2026, 3, 31)  # type: ignore[union-attr]
    with db.session() as session:
        times = read_columns(session, "interactions", [Column("occurred_at", "time")])
        deals = read_columns(
            session,
            "deals",
            [Column("id", "int"), Column("expected_close_date", "date", null=NEVER_AFTER),
             Column("closed_at", "time", null=NEVER_AFTER)],
        )  # fmt: skip
    assert sorted(times["occurred_at"].tolist()) == [
        micros(LATE_IN_A_SECOND),
        micros(LAST_OF_THE_YEAR),
    ]
    by_id = dict(zip(deals["id"].tolist(), deals["expected_close_date"].tolist(), strict=True))
    assert by_id == {dated: micros(datetime(2026, 3, 31, tzinfo=UTC)), undated: NEVER_AFTER}
    assert deals["closed_at"].tolist() == [NEVER_AFTER, NEVER_AFTER]  # open: no close time


def test_several_readers_read_what_one_reader_reads(db):
    cid = customer(db, "Ana", datetime(2025, 1, 1, tzinfo=UTC))
    for n in range(7):
        interaction(db, cid, datetime(2025, 3, 1 + n, tzinfo=UTC), Channel.email, Direction.inbound)
    columns = [Column("id", "int"), Column("occurred_at", "time")]
    with db.session() as session:
        one = read_columns(session, "interactions", columns, block=2)
        three = read_columns(session, "interactions", columns, readers=3, block=2)
        later = read_columns(
            session, "interactions", columns, "occurred_at >= '2025-03-04'", readers=3, block=2
        )
    assert len(one["id"]) == 7
    assert {k: v.tolist() for k, v in three.items()} == {k: v.tolist() for k, v in one.items()}
    assert later["id"].tolist() == one["id"].tolist()[3:]
