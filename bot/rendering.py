"""Text rendering shared by Slack messages and digests.

Slack's mrkdwn needs only ``& < >`` escaped; HTML autoescaping would show ``&#39;`` literally
in Slack, so Slack templates use the ``slack_escape`` filter instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:  # the command line renders without Jinja2; importing it costs start-up time
    from jinja2 import Environment

logger = logging.getLogger(__name__)

_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def slack_escape(value: object) -> str:
    """User text made safe for mrkdwn: no accidental mentions, links or broken markup."""
    if value is None:
        return ""
    return str(value).translate(_SLACK_ESCAPES)


def truncate(value: str, limit: int, ellipsis: str = "…") -> str:
    return value if len(value) <= limit else value[: max(0, limit - len(ellipsis))] + ellipsis


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 deal``, ``2 deals``, ``0 deals``; ``many`` for words that do not just take an s."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def zone_label(moment: datetime) -> str:
    """The zone of an aware time as people read it: its abbreviation (CET, EST), or its offset
    from UTC where the zone has no abbreviation (UTC-03, UTC+05:30)."""
    name = moment.tzname() or ""
    if name and name[0] not in "+-":
        return name
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    hours, rest = divmod(minutes, 60)
    return f"UTC{sign}{hours:02d}" + (f":{rest:02d}" if rest else "")


def in_zone(value: datetime, tz: str | tzinfo, fmt: str) -> str:
    """``value`` shown in the zone ``tz`` with the zone named, e.g. ``2026-12-05 09:00 CET``."""
    try:
        zone = tz if isinstance(tz, tzinfo) else ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):  # a bad zone in the user table must not break
        zone = ZoneInfo("UTC")
    local = value.astimezone(zone)
    return f"{local.strftime(fmt)} {zone_label(local)}"


def register_filters(env: Environment) -> Environment:
    env.filters["slack_escape"] = slack_escape
    env.filters["truncate_chars"] = truncate
    return env
