"""Events: messages in linked channels become interactions; edits and deletions follow them."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.handlers.common import author_facts, bot_context, read, write
from crm.services import slack_capture
from crm.services.actor import Actor

logger = logging.getLogger(__name__)


def chat_message(
    event: dict[str, Any],
    *,
    team: str | None,
    client: WebClient | None,
    permalink: str | None = None,
) -> slack_capture.ChatMessage:
    """A Slack message event as the plain values the capture service takes."""
    author = author_facts(client, event.get("user"), team) if client is not None else None
    files = [
        slack_capture.ChatFile(
            name=str(f.get("name") or f.get("title") or "file"), url=f.get("permalink")
        )
        for f in event.get("files") or []
        if isinstance(f, dict)
    ]
    return slack_capture.ChatMessage(
        channel=str(event.get("channel") or ""),
        ts=str(event["ts"]),
        text=str(event.get("text") or ""),
        user=event.get("user"),
        team=team,
        thread_ts=event.get("thread_ts"),
        subtype=event.get("subtype"),
        bot_id=event.get("bot_id"),
        files=files,
        author_email=author.email if author else None,
        author_name=author.name if author else None,
        author_is_external=author.external if author else False,
        permalink=permalink,
    )


def _capture_actor(user: str | None) -> Actor:
    # Captures are automatic, not a person's edit: a system actor, named after the author.
    return Actor.system(f"slack:{user or 'unknown'} (channel capture)")


def on_message(
    event: dict[str, Any], body: dict[str, Any], client: WebClient, context: dict[str, Any]
) -> None:
    bot = bot_context(context)
    channel = event.get("channel")
    if not channel or read(bot, lambda s: slack_capture.get_link(s, channel)) is None:
        return
    team = body.get("team_id")
    subtype = event.get("subtype")
    if subtype == "message_changed":
        new = event.get("message") or {}
        old = event.get("previous_message") or {}
        if "ts" not in new or new.get("text") == old.get("text"):
            return  # unfurls and other attachment updates change no text
        write(
            bot,
            lambda s: slack_capture.capture_edit(
                s,
                team=team,
                channel=channel,
                ts=str(new["ts"]),
                text=str(new.get("text") or ""),
                actor=_capture_actor(new.get("user")),
            ),
        )
        return
    if subtype == "message_deleted":
        if not event.get("deleted_ts"):
            return
        write(
            bot,
            lambda s: slack_capture.capture_delete(
                s,
                team=team,
                channel=channel,
                ts=str(event["deleted_ts"]),
                actor=_capture_actor(None),
            ),
        )
        return
    if "ts" not in event:
        return
    if slack_capture.skip_reason(chat_message(event, team=team, client=None)):
        return  # before asking Slack who wrote it
    message = chat_message(event, team=team, client=client)
    result = write(
        bot,
        lambda s: slack_capture.capture_message(
            s, message=message, actor=_capture_actor(message.user)
        ),
    )
    if result.skipped:
        logger.debug("message %s in %s not captured: %s", message.ts, channel, result.skipped)


def register(app: App) -> None:
    app.event("message")(on_message)
