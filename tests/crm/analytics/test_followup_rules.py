"""Follow-up rules with a frozen clock: every input time is relative to NOW."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm.analytics import followups as rules
from crm.analytics.followups import CustomerTouch, DealRecord, FollowUpRecord, ThreadRecord

NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)  # a Wednesday, 16:00 in Berlin
BERLIN = ZoneInfo("Europe/Berlin")


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def fu(id: int, due: datetime, created: datetime, customer_id: int = 1) -> FollowUpRecord:
    return FollowUpRecord(
        id=id,
        customer_id=customer_id,
        owner_id=7,
        due_at=due,
        created_at=created,
        note="send the quote",
        customer_name="Ana",
    )


def test_overdue_follow_ups_say_why_and_what_to_do():
    found = rules.overdue_follow_ups(
        NOW, [fu(1, ago(days=8), ago(days=20)), fu(2, ago(days=-1), ago(days=2))], {}
    )
    assert [f.follow_up_id for f in found] == [1]
    f = found[0]
    assert f.kind == "overdue_follow_up" and f.severity == 3 and f.owner_id == 7
    assert "send the quote" in f.why and "Ana" in f.why and "8 days ago" in f.why
    assert f.action


def test_a_customer_reply_clears_a_waiting_follow_up():
    waiting = fu(1, ago(days=2), ago(days=10))
    assert rules.overdue_follow_ups(NOW, [waiting], {1: ago(days=5)}) == []
    # A reply from before the follow-up was made does not clear it.
    assert len(rules.overdue_follow_ups(NOW, [waiting], {1: ago(days=11)})) == 1


def deal(**kw) -> DealRecord:
    base = dict(
        id=5,
        customer_id=1,
        owner_id=7,
        title="Team plan",
        stage="proposal",
        stage_entered_at=ago(days=30),
    )
    return DealRecord(**(base | kw))


def test_rotting_deal_after_the_stage_limit():
    found = rules.rotting_deals(NOW, [deal(last_activity_at=ago(days=11))], {"proposal": 10})
    assert len(found) == 1 and found[0].kind == "rotting_deal" and "11 days" in found[0].why
    assert "allows 10" in found[0].why and found[0].deal_id == 5


def test_any_interaction_resets_the_rotting_clock():
    assert rules.rotting_deals(NOW, [deal(last_activity_at=ago(days=9))], {"proposal": 10}) == []


def test_a_scheduled_next_step_keeps_a_deal_fresh():
    idle = deal(last_activity_at=ago(days=40))
    assert (
        rules.rotting_deals(
            NOW,
            [idle.__class__(**{**idle.__dict__, "next_step_at": ago(days=-3)})],
            {"proposal": 10},
        )
        == []
    )
    # A next step that is itself in the past is not a next step.
    stale = idle.__class__(**{**idle.__dict__, "next_step_at": ago(days=1)})
    assert len(rules.rotting_deals(NOW, [stale], {"proposal": 10})) == 1


def test_rotting_deals_come_longest_idle_first_and_the_stage_entry_counts():
    deals = [
        deal(id=1, last_activity_at=ago(days=12)),
        deal(id=2, stage_entered_at=ago(days=9), last_activity_at=ago(days=60)),  # moved lately
        deal(id=3, last_activity_at=None),  # never touched: idle since it entered the stage
        deal(id=4, last_activity_at=ago(days=20)),
    ]
    found = rules.rotting_deals(NOW, deals, {"proposal": 10})
    assert [f.deal_id for f in found] == [3, 4, 1]
    assert found[0].since == ago(days=30) and found[0].severity == 3 and found[2].severity == 2


def test_stages_without_a_limit_never_rot():
    assert (
        rules.rotting_deals(NOW, [deal(stage="won", last_activity_at=ago(days=400))], {"won": 0})
        == []
    )
    # A stage the configuration does not know (any more) has no limit either.
    assert rules.rotting_deals(NOW, [deal(stage="pilot")], {"proposal": 10}) == []


def test_close_date_passed_uses_the_team_time_zone():
    late = deal(expected_close_date=date(2026, 3, 10))
    today = deal(expected_close_date=date(2026, 3, 11))
    found = rules.close_date_passed(NOW, [late, today], BERLIN)
    assert len(found) == 1 and "2026-03-10" in found[0].why and "1 day ago" in found[0].why
    # 23:30 UTC on the 11th is already the 12th in Berlin: the 11th has passed there.
    assert (
        len(rules.close_date_passed(datetime(2026, 3, 11, 23, 30, tzinfo=UTC), [today], BERLIN))
        == 1
    )


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        (
            datetime(2026, 3, 11, 9, 0, tzinfo=BERLIN),
            datetime(2026, 3, 11, 12, 0, tzinfo=BERLIN),
            3,
        ),
        (
            datetime(2026, 3, 10, 16, 0, tzinfo=BERLIN),
            datetime(2026, 3, 11, 10, 0, tzinfo=BERLIN),
            2,
        ),
        (
            datetime(2026, 3, 13, 16, 0, tzinfo=BERLIN),
            datetime(2026, 3, 16, 10, 0, tzinfo=BERLIN),
            2,
        ),  # over a weekend
        (
            datetime(2026, 3, 14, 10, 0, tzinfo=BERLIN),
            datetime(2026, 3, 15, 18, 0, tzinfo=BERLIN),
            0,
        ),
        (datetime(2026, 3, 2, 8, 0, tzinfo=BERLIN), datetime(2026, 3, 9, 8, 0, tzinfo=BERLIN), 40),
    ],
)
def test_business_hours(start, end, hours):
    assert rules.business_hours_between(start, end, BERLIN) == pytest.approx(hours)


def thread(last_in: datetime | None, last_out: datetime | None) -> ThreadRecord:
    return ThreadRecord(
        customer_id=1,
        owner_id=7,
        thread_key="t",
        last_inbound_at=last_in,
        last_outbound_at=last_out,
        customer_name="Ana",
        subject="Invoice",
    )


def test_unanswered_email_counts_business_hours_only():
    friday_evening = datetime(2026, 3, 6, 18, 0, tzinfo=BERLIN)  # Fri 18:00 -> Wed 16:00 = 8+8+7 h
    found = rules.unanswered_emails(
        NOW, [thread(friday_evening, None)], business_hours=8, tz=BERLIN
    )
    assert len(found) == 1 and "23 business hours" in found[0].why and "Invoice" in found[0].why
    this_morning = datetime(2026, 3, 11, 10, 0, tzinfo=BERLIN)
    assert (
        rules.unanswered_emails(NOW, [thread(this_morning, None)], business_hours=8, tz=BERLIN)
        == []
    )
    answered = thread(friday_evening, datetime(2026, 3, 9, 9, 0, tzinfo=BERLIN))
    assert rules.unanswered_emails(NOW, [answered], business_hours=8, tz=BERLIN) == []


def test_awaiting_reply_stops_on_reply():
    ours = ago(days=6)
    assert len(rules.awaiting_reply(NOW, [thread(None, ours)], days=5)) == 1
    assert rules.awaiting_reply(NOW, [thread(ago(days=1), ours)], days=5) == []
    assert rules.awaiting_reply(NOW, [thread(None, ago(days=4))], days=5) == []


def test_going_quiet_by_value_tier():
    people = [
        CustomerTouch(1, 7, "Big Co", "high", ago(days=15)),
        CustomerTouch(2, 7, "Mid Co", "mid", ago(days=15)),
        CustomerTouch(3, 7, "Small Co", "low", ago(days=61)),
        CustomerTouch(4, 7, "Never", "low", None),
    ]
    found = rules.going_quiet(NOW, people)
    assert [f.customer_id for f in found] == [1, 3, 4]
    assert "every 14 days" in found[0].why and found[0].severity == 3


def test_value_tiers_never_put_zero_spend_at_the_top():
    import numpy as np

    assert (
        list(rules.value_tiers(np.array([0, 0, 0, 0, 0, 1, 2, 3, 4, 5.0])))
        == ["low"] * 5 + ["mid"] * 3 + ["high"] * 2
    )
    assert list(rules.value_tiers(np.zeros(10))) == ["low"] * 10
