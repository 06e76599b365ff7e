"""The message shortcut "Log to CRM": a form to pick the customer (and deal) for any message."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.handlers.common import start
from bot.slack import ids
from bot.slack.blocks.forms import log_message_modal
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)


def log_to_crm(
    ack: Ack, shortcut: dict[str, Any], client: WebClient, context: dict[str, Any]
) -> None:
    user_id = shortcut["user"]["id"]
    message = shortcut.get("message") or {}

    def refuse(err: CRMError) -> None:
        client.chat_postEphemeral(
            channel=(shortcut.get("channel") or {}).get("id") or user_id,
            user=user_id,
            text=str(err),
        )

    if start(context, client, user_id, ack=ack, writes=True, refuse=refuse) is None:
        return
    # Ids only in the form's metadata: the text is fetched again on submit.
    meta = {
        "channel": (shortcut.get("channel") or {}).get("id"),
        "ts": message.get("ts"),
        "thread_ts": message.get("thread_ts"),
        "team": (shortcut.get("team") or {}).get("id"),
    }
    in_thread = bool(message.get("thread_ts")) or int(message.get("reply_count") or 0) > 0
    client.views_open(
        trigger_id=shortcut["trigger_id"],
        view=log_message_modal(
            meta=meta, preview=str(message.get("text") or ""), in_thread=in_thread
        ),
    )


def register(app: App) -> None:
    app.shortcut(ids.SHORTCUT_LOG)(log_to_crm)
