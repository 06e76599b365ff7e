"""Text rendering shared by Slack messages and digests.

Slack's mrkdwn needs only ``& < >`` escaped; HTML autoescaping would show ``&#39;`` literally
in Slack, so Slack templates use the ``slack_escape`` filter instead.
"""

from __future__ import annotations

import logging

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


def register_filters(env: Environment) -> Environment:
    env.filters["slack_escape"] = slack_escape
    env.filters["truncate_chars"] = truncate
    return env
