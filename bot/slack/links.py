"""Links into Slack from outside it (a digest email): the app's Home tab."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

logger = logging.getLogger(__name__)

# By Slack API and bot token: the workspace and the app behind a token do not change.
_HOME_LINKS: dict[tuple[str, str], str] = {}


def app_home_link(client: WebClient) -> str | None:
    """``slack://app?team=T..&id=A..&tab=home`` for the app behind ``client``'s token, or None
    when Slack cannot say (it is asked once per token, then remembered)."""
    key = (client.base_url, client.token or "")
    if key in _HOME_LINKS:
        return _HOME_LINKS[key]
    try:
        auth = client.auth_test()
        team, app = auth.get("team_id"), auth.get("app_id")
        if not app and auth.get("bot_id"):
            app = (client.bots_info(bot=auth["bot_id"]).get("bot") or {}).get("app_id")
    except (SlackApiError, OSError) as exc:
        logger.warning("could not learn the Slack app's id for links: %s", exc)
        return None
    if not team or not app:
        return None
    link = "slack://app?" + urlencode({"team": team, "id": app, "tab": "home"})
    _HOME_LINKS[key] = link
    return link

