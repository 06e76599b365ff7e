from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm.models import FollowUpStatus, Role
from crm.services import followups
from crm.services.dates import parse_when
from crm.services.errors import CRMError, PermissionDenied
from tests.conftest import make_user
from tests.factories import add_customer

# Monday 23 November 2026, 14:30 in Berlin
NOW = datetime(2026, 11, 23, 13, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "expected_local"),
    [
        ("tomorrow 9am", datetime(2026, 11, 24, 9, 0)),
        ("in 3 days", datetime(2026, 11, 26, 9, 0)),
        ("next friday", datetime(2026, 11, 27, 9, 0)),
        ("friday 4pm", datetime(2026, 11, 27, 16, 0)),
        ("in 2 hours", datetime(2026, 11, 23, 16, 30)),
        ("2026-12-01 14:00", datetime(2026, 12, 1, 14, 0)),
        ("today", datetime(2026, 11, 23, 14, 45)),  # said at 14:30: later today, not 09:00
    ],
)
def test_natural_language_times_in_the_users_zone(text, expected_local):
    assert parse_when(text, tz="Europe/Berlin", now=NOW) == expected_local.replace(
        tzinfo=BERLIN
    ).astimezone(UTC)


def test_unreadable_time_says_how_to_write_one():
    with pytest.raises(CRMError) as info:
        parse_when("whenever you like", tz="UTC", now=NOW)
    assert "tomorrow 9am" in str(info.value)


def test_create_list_complete_snooze(db, admin):
    customer = add_customer(db, admin)
    _, rita = make_user(db, "Rita Rep", Role.rep)
    with db.transaction() as s:
        later = followups.create_follow_up(
            s,
            customer_id=customer.id,
            when="next friday",
            note="send quote",
            actor=rita,
            tz="Europe/Berlin",
            now=NOW,
        )
        soon = followups.create_follow_up(
            s, customer_id=customer.id, when="tomorrow 9am", actor=rita, tz="Europe/Berlin", now=NOW
        )
    with db.session() as s:
        assert [f.id for f in followups.list_follow_ups(s, owner_id=rita.user_id)] == [
            soon.id,
            later.id,
        ]
        assert followups.list_follow_ups(s, owner_id=rita.user_id, due_before=NOW) == []
    with db.transaction() as s:
        done = followups.complete_follow_up(s, follow_up_id=soon.id, actor=rita)
        assert done.status == FollowUpStatus.done
        followups.complete_follow_up(
            s, follow_up_id=soon.id, actor=rita
        )  # a second click changes nothing
    with db.transaction() as s:
        snoozed = followups.snooze_follow_up(
            s,
            follow_up_id=later.id,
            until=timedelta(weeks=1),
            actor=rita,
            tz="Europe/Berlin",
            now=NOW,
        )
    assert snoozed.status == FollowUpStatus.snoozed
    assert snoozed.due_at == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    with db.session() as s:
        assert [f.id for f in followups.list_follow_ups(s, owner_id=rita.user_id)] == [later.id]


def test_past_times_and_other_reps_are_refused(db, admin):
    customer = add_customer(db, admin)
    _, rita = make_user(db, "Rita Rep", Role.rep)
    _, rob = make_user(db, "Rob Rep", Role.rep)
    with db.transaction() as s, pytest.raises(CRMError, match="in the past"):
        followups.create_follow_up(
            s, customer_id=customer.id, when=NOW - timedelta(days=1), actor=rita, tz="UTC", now=NOW
        )
    with db.transaction() as s:
        mine = followups.create_follow_up(
            s, customer_id=customer.id, when="tomorrow", actor=rita, tz="UTC", now=NOW
        )
    with db.transaction() as s, pytest.raises(PermissionDenied):
        followups.complete_follow_up(s, follow_up_id=mine.id, actor=rob)
    with db.transaction() as s, pytest.raises(PermissionDenied):
        followups.create_follow_up(
            s,
            customer_id=customer.id,
            when="tomorrow",
            actor=rob,
            owner_id=rita.user_id,
            tz="UTC",
            now=NOW,
        )
