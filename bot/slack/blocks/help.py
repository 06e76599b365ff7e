"""The reply to `/crm help`: every verb with what it does and an example."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.rendering import slack_escape as esc
from bot.slack.blocks.base import MAX_TEXT, context, message, section


def help_message(verbs: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    lines = [
        f"`/crm {esc(usage)}` {esc(what)}\n    e.g. `/crm {esc(example)}`"
        for usage, what, example in verbs
    ]
    blocks: list[Block] = [HeaderBlock(text="crmbot: /crm verbs")]
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > MAX_TEXT - 100:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    blocks.append(
        context("Message shortcut *Log to CRM* stores any message; the Home tab shows your day.")
    )
    return message(blocks, "crmbot: /crm verbs")
