"""Natural-language times ("tomorrow 9am", "in 3 days", "next friday") in a user's zone."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from crm.services.errors import CRMError

# Follow-ups given a day but no time of day land at the start of the working day.
DEFAULT_TIME_OF_DAY = time(9, 0)

_MENTIONS_TIME = re.compile(
    r"\d\s*(?:am|pm|a\.m\.|p\.m\.|h\b)|\d:\d\d|\b(?:hours?|hrs?|minutes?|mins?|noon|midnight|"
    r"morning|afternoon|evening|tonight|now)\b",
    re.IGNORECASE,
)


def parse_when(
    text: str, *, tz: str | ZoneInfo, now: datetime | None = None, languages: tuple[str, ...] = ("en",)
) -> datetime:
    """The moment ``text`` means for someone in ``tz``, as an aware UTC datetime.

    The languages are fixed rather than detected: detection makes dateparser load every
    language on the first unknown phrase (seconds), and guesses wrong on short phrases.
    """
    import dateparser

    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    now = (now or datetime.now(UTC)).astimezone(zone)
    phrase = " ".join(text.split())
    if not phrase:
        raise CRMError("No time given.", hint="Try 'tomorrow 9am', 'in 3 days' or 'next friday'.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = dateparser.parse(
            phrase,
            languages=list(languages),
            settings={
                "TIMEZONE": zone.key,
                "RETURN_AS_TIMEZONE_AWARE": True,
                "PREFER_DATES_FROM": "future",
                "RELATIVE_BASE": now.replace(tzinfo=None),
            },
        )
    if parsed is None:
        raise CRMError(
            f"I could not read {text!r} as a time.",
            hint="Try 'tomorrow 9am', 'in 3 days', 'next friday' or '2026-12-01 14:00'.",
        )
    local = parsed.astimezone(zone)
    if not _MENTIONS_TIME.search(phrase):
        local = datetime.combine(local.date(), DEFAULT_TIME_OF_DAY, tzinfo=zone)
        if local.date() == now.date() and local < now:
            # "today" said after 9 am means later today: the next quarter hour, not the past.
            minutes = (now.minute // 15 + 1) * 15
            local = now.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=minutes)
    return local.astimezone(UTC)
