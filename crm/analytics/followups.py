"""Follow-up rules: pure functions of (now, records) that say what needs doing, why, and what to do.

No clock and no database in here: the caller passes ``now`` and plain records (built from SQL
aggregates by ``crm.analytics.refresh``), so every rule is tested with a frozen clock.

* overdue follow-ups, except those a customer reply has cleared (stop-on-reply: a follow-up
  made before the customer's latest reply was waiting on them, and they answered);
* rotting deals: an open deal with no activity for longer than its stage allows; any
  interaction on the deal or its customer resets the clock (as Pipedrive does), and so does a
  scheduled follow-up in the future, which is a next step;
* open deals whose expected close date has passed;
* inbound emails unanswered for more than N business hours (Mon-Fri, 09:00-17:00 local);
* emails of ours waiting for a reply for more than N days (cleared by any reply);
* active customers with no touch in 14/30/60 days, by value tier (high/mid/low).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

WORKDAY = (time(9, 0), time(17, 0))
QUIET_DAYS_BY_TIER: dict[str, int] = {"high": 14, "mid": 30, "low": 60}


@dataclass(frozen=True)
class FindingDraft:
    kind: str
    why: str
    action: str
    severity: int = 1
    since: datetime | None = None
    customer_id: int | None = None
    deal_id: int | None = None
    follow_up_id: int | None = None
    owner_id: int | None = None


@dataclass(frozen=True)
class FollowUpRecord:
    id: int
    customer_id: int
    owner_id: int | None
    due_at: datetime
    created_at: datetime
    note: str = ""
    customer_name: str = ""


@dataclass(frozen=True)
class DealRecord:
    id: int
    customer_id: int
    owner_id: int | None
    title: str
    stage: str
    stage_entered_at: datetime
    expected_close_date: date | None = None
    last_activity_at: datetime | None = None  # latest interaction on the deal or its customer
    next_step_at: datetime | None = None  # earliest open follow-up still in the future


@dataclass(frozen=True)
class ThreadRecord:
    customer_id: int
    owner_id: int | None
    thread_key: str | None
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    customer_name: str = ""
    subject: str | None = None


@dataclass(frozen=True)
class CustomerTouch:
    customer_id: int
    owner_id: int | None
    name: str
    value_tier: str  # high, mid, low
    last_touch_at: datetime | None


def _days(delta: timedelta) -> int:
    return max(0, delta.days)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def overdue_follow_ups(
    now: datetime, follow_ups: Iterable[FollowUpRecord], last_reply: Mapping[int, datetime]
) -> list[FindingDraft]:
    """Open follow-ups past due; a customer reply after the follow-up was made clears it."""
    out = []
    for f in follow_ups:
        if f.due_at >= now:
            continue
        replied = last_reply.get(f.customer_id)
        if replied is not None and replied > f.created_at:
            continue  # they wrote back: the thing we were waiting for happened
        late = _days(now - f.due_at)
        what = f" ({f.note})" if f.note else ""
        who = f.customer_name or "the customer"
        out.append(
            FindingDraft(
                kind="overdue_follow_up",
                why=f"Follow-up{what} with {who} was due {late} days ago."
                if late
                else f"Follow-up{what} with {who} is due today and not done.",
                action="Get in touch today, then mark it done or snooze it to a real date.",
                severity=3 if late >= 7 else 2,
                since=f.due_at,
                customer_id=f.customer_id,
                follow_up_id=f.id,
                owner_id=f.owner_id,
            )
        )
    return out


def rotting_deals(
    now: datetime, deals: Iterable[DealRecord], rotting_days: Mapping[str, int]
) -> list[FindingDraft]:
    """Open deals idle longer than their stage allows, with no next step scheduled.

    Idle since the later of entering the stage and the last interaction on the deal or its
    customer. A stage missing from ``rotting_days`` or set to 0 never rots. Longest idle first.
    """
    out = []
    for d in deals:
        limit = rotting_days.get(d.stage, 0)
        if limit <= 0:
            continue
        if d.next_step_at is not None and d.next_step_at >= now:
            continue  # a scheduled follow-up is a next step: the deal is not forgotten
        last = max(t for t in (d.stage_entered_at, d.last_activity_at) if t is not None)
        idle = now - last
        if idle <= timedelta(days=limit):
            continue
        out.append(
            FindingDraft(
                kind="rotting_deal",
                why=f"Deal '{d.title}' has had no activity for {_days(idle)} days in {d.stage} "
                f"(the stage allows {limit}) and no next step is scheduled.",
                action="Contact the customer and schedule the next step, "
                "or close the deal as lost.",
                severity=3 if idle > timedelta(days=2 * limit) else 2,
                since=last,
                customer_id=d.customer_id,
                deal_id=d.id,
                owner_id=d.owner_id,
            )
        )
    out.sort(key=lambda f: (f.since, f.deal_id))
    return out


def close_date_passed(
    now: datetime, deals: Iterable[DealRecord], tz: ZoneInfo
) -> list[FindingDraft]:
    """Open deals whose expected close date is before today (in the team's time zone)."""
    today = now.astimezone(tz).date()
    out = []
    for d in deals:
        if d.expected_close_date is None or d.expected_close_date >= today:
            continue
        late = (today - d.expected_close_date).days
        out.append(
            FindingDraft(
                kind="close_date_passed",
                why=f"Deal '{d.title}' was expected to close on {d.expected_close_date:%Y-%m-%d}, "
                f"{_plural(late, 'day')} ago, and is still open in {d.stage}.",
                action="Update the close date with the customer's real timeline, "
                "or close the deal.",
                severity=2 if late > 14 else 1,
                since=datetime.combine(d.expected_close_date, time(0), tzinfo=tz),
                customer_id=d.customer_id,
                deal_id=d.id,
                owner_id=d.owner_id,
            )
        )
    return out


def business_hours_between(
    start: datetime, end: datetime, tz: ZoneInfo, workday: tuple[time, time] = WORKDAY
) -> float:
    """Working hours (Mon-Fri, ``workday`` local time) between two instants."""
    if end <= start:
        return 0.0
    s, e = start.astimezone(tz), end.astimezone(tz)
    day_hours = (
        datetime.combine(date.min, workday[1]) - datetime.combine(date.min, workday[0])
    ).seconds / 3600

    def within(d: date, lo: datetime, hi: datetime) -> float:
        if d.weekday() >= 5:
            return 0.0
        open_, close = (datetime.combine(d, t, tzinfo=tz) for t in workday)
        return max(0.0, (min(hi, close) - max(lo, open_)).total_seconds() / 3600)

    if s.date() == e.date():
        return within(s.date(), s, e)
    first = within(s.date(), s, datetime.combine(s.date(), workday[1], tzinfo=tz))
    last = within(e.date(), datetime.combine(e.date(), workday[0], tzinfo=tz), e)
    middle = int(np.busday_count(s.date() + timedelta(days=1), e.date())) * day_hours
    return first + middle + last


def business_hours_until(
    starts: list[datetime], end: datetime, tz: ZoneInfo, workday: tuple[time, time] = WORKDAY
) -> np.ndarray:
    """``business_hours_between(start, end)`` for many starts at once (same rules, in arrays:
    the refresh asks it of every open email thread)."""
    if not starts:
        return np.zeros(0)
    local = pd.DatetimeIndex(pd.to_datetime(starts, utc=True)).tz_convert(tz)
    e = end.astimezone(tz)

    def clock(t: time) -> float:
        return t.hour + t.minute / 60 + t.second / 3600 + t.microsecond / 3.6e9

    open_, close = clock(workday[0]), clock(workday[1])
    # Wall-clock hours of the day, as aware datetimes in one zone subtract (DST days too).
    s_hour = (
        local.hour + local.minute / 60 + local.second / 3600 + local.microsecond / 3.6e9
    ).to_numpy(dtype=np.float64)
    e_hour = clock(e.time())
    s_day = local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")
    e_day = np.datetime64(e.date(), "D")
    s_work, e_work = np.is_busday(s_day), bool(np.is_busday(e_day))
    same_day = s_day == e_day
    # A start on a weekend day adds nothing of its own day.
    within_same = s_work * np.maximum(0.0, np.minimum(e_hour, close) - np.maximum(s_hour, open_))
    first = s_work * np.maximum(0.0, close - np.maximum(s_hour, open_))
    last = max(0.0, min(e_hour, close) - open_) if e_work else 0.0
    middle = np.busday_count(np.minimum(s_day + 1, e_day), e_day) * (close - open_)
    hours = np.where(same_day, within_same, first + middle + last)
    before = np.array([st < end for st in starts])
    return np.where(before, hours, 0.0)


def unanswered_emails(
    now: datetime, threads: Iterable[ThreadRecord], *, business_hours: float, tz: ZoneInfo
) -> list[FindingDraft]:
    """Inbound emails with no later answer from us for more than ``business_hours`` work hours."""
    waiting = [
        t
        for t in threads
        if t.last_inbound_at is not None
        and (t.last_outbound_at is None or t.last_outbound_at < t.last_inbound_at)
    ]
    hours = business_hours_until([t.last_inbound_at for t in waiting], now, tz)  # type: ignore[misc]
    out = []
    for t, waited in zip(waiting, hours.tolist(), strict=True):
        if waited <= business_hours:
            continue
        about = f" about '{t.subject}'" if t.subject else ""
        out.append(
            FindingDraft(
                kind="unanswered_email",
                why=f"{t.customer_name or 'A customer'} emailed{about} "
                f"{round(waited)} business hours ago and has had no answer.",
                action="Reply today, even if only to say when they will have a full answer.",
                severity=3 if waited > 3 * business_hours else 2,
                since=t.last_inbound_at,
                customer_id=t.customer_id,
                owner_id=t.owner_id,
            )
        )
    return out


def awaiting_reply(
    now: datetime, threads: Iterable[ThreadRecord], *, days: int
) -> list[FindingDraft]:
    """Our emails with no reply for more than ``days``; any reply from the customer clears it."""
    out = []
    for t in threads:
        if t.last_outbound_at is None:
            continue
        if t.last_inbound_at is not None and t.last_inbound_at > t.last_outbound_at:
            continue  # stop-on-reply
        waited = now - t.last_outbound_at
        if waited <= timedelta(days=days):
            continue
        about = f" about '{t.subject}'" if t.subject else ""
        out.append(
            FindingDraft(
                kind="awaiting_reply",
                why=f"No reply from {t.customer_name or 'the customer'} to our email{about} "
                f"of {_days(waited)} days ago.",
                action="Send a short nudge, or call them.",
                severity=1,
                since=t.last_outbound_at,
                customer_id=t.customer_id,
                owner_id=t.owner_id,
            )
        )
    return out


def going_quiet(
    now: datetime,
    customers: Iterable[CustomerTouch],
    days_by_tier: Mapping[str, int] = QUIET_DAYS_BY_TIER,
) -> list[FindingDraft]:
    """Active customers not touched (either way) for longer than their value tier allows."""
    out = []
    for c in customers:
        limit = days_by_tier.get(c.value_tier)
        if limit is None:
            continue
        if c.last_touch_at is not None and now - c.last_touch_at <= timedelta(days=limit):
            continue
        quiet = f"{_days(now - c.last_touch_at)} days" if c.last_touch_at else "ever"
        out.append(
            FindingDraft(
                kind="going_quiet",
                why=f"{c.name} ({c.value_tier}-value customer) has had no contact with us "
                f"for {quiet}; {c.value_tier}-value customers should hear from us "
                f"every {limit} days.",
                action="Check in: a short personal note or a call about how things are going.",
                severity={"high": 3, "mid": 2}.get(c.value_tier, 1),
                since=c.last_touch_at,
                customer_id=c.customer_id,
                owner_id=c.owner_id,
            )
        )
    return out


def value_tiers(values: np.ndarray) -> np.ndarray:
    """high = top 20% by value, mid = next 30%, low = the rest (ties share a tier)."""
    if len(values) == 0:
        return np.array([], dtype=object)
    hi, mid = np.quantile(values, [0.8, 0.5])
    # Customers who spent nothing are never high or mid, however many share that zero.
    high = (values >= hi) & (values > 0)
    middle = (values >= mid) & (values > 0) & ~high
    return np.where(high, "high", np.where(middle, "mid", "low")).astype(object)
