"""A digest as Slack messages: Block Kit sections from the digest's mrkdwn templates, with
the buttons each item needs (done / snooze, open customer, log note), split into messages of
at most Slack's 50 blocks.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    SectionBlock,
)

from bot.digests import Digest, Item, template_context, text_environment
from bot.rendering import slack_escape as esc
from bot.rendering import truncate
from bot.slack import ids
from bot.slack.blocks.base import MAX_MESSAGE_BLOCKS, button, md


def _item_blocks(digest: Digest, item: Item, key: str) -> list[Block]:
    text = text_environment().get_template("digests/slack_item.md.j2").render(item=item)
    out: list[Block] = [SectionBlock(text=md(text.strip()))]
    buttons = []
    if item.follow_up_id is not None:
        fid = str(item.follow_up_id)
        buttons += [
            button("Mark done", ids.FOLLOW_UP_DONE, fid, style="primary"),
            button("Snooze 1 day", ids.FOLLOW_UP_SNOOZE_DAY, fid),
            button("Snooze 1 week", ids.FOLLOW_UP_SNOOZE_WEEK, fid),
        ]
    if item.customer_id is not None:
        cid = str(item.customer_id)
        buttons += [button("Open customer", ids.OPEN_CUSTOMER, cid)]
        if digest.kind == "followups":
            buttons += [button("Log note", ids.LOG_NOTE, cid)]
        elif item.follow_up_id is None:
            # A manager reading a risk or segment digest hands the account on with a reminder.
            buttons += [button("Follow up", ids.FOLLOW_UP, cid)]
    if buttons:
        # Slack rejects a message whose block ids repeat; one customer can appear in two sections.
        out.append(ActionsBlock(block_id=f"digest:{digest.kind}:{key}"[:255], elements=buttons[:5]))
    return out


def digest_messages(digest: Digest) -> list[dict[str, Any]]:
    """chat.postMessage payloads (``text`` + ``blocks``); a long digest becomes several messages."""
    header_text = (
        text_environment()
        .get_template("digests/slack_header.md.j2")
        .render(**template_context(digest))
        .strip()
    )
    # Units stay together (an item's text and its buttons); messages hold at most 49 blocks,
    # leaving room for the "Part n of m" line.
    units: list[list[Block]] = [
        [
            HeaderBlock(text=truncate(f"{digest.title} · {digest.recipient}", 150)),
            SectionBlock(text=md(header_text)),
        ]
    ]
    for section in digest.visible_sections:
        summary = "\n".join(f"• {line}" for line in section.summary)
        note = f"\n:point_right: {esc(section.note)}" if section.note else ""
        heading = f"*{esc(section.heading)}*{note}" + (f"\n{esc(summary)}" if summary else "")
        units.append([DividerBlock(), SectionBlock(text=md(heading))])
        units.extend(
            _item_blocks(digest, item, f"{section.key}:{n}") for n, item in enumerate(section.items)
        )
        if section.more:
            more = f"…and {section.more:,} more: `{esc(section.see_all)}`"
            units.append([ContextBlock(elements=[md(more)])])
    if digest.notes:
        units.append([ContextBlock(elements=[md("\n".join(esc(line) for line in digest.notes))])])
    capacity = MAX_MESSAGE_BLOCKS - 1
    messages: list[list[Block]] = [[]]
    for unit in units:
        if len(messages[-1]) + len(unit) > capacity:
            messages.append([])
        messages[-1].extend(unit)
    total = len(messages)
    out = []
    for n, chunk in enumerate(messages, 1):
        if total > 1:
            chunk = [*chunk, ContextBlock(elements=[md(f"Part {n} of {total}")])]
        fallback = f"{digest.title} for {digest.recipient}" + (
            f" (part {n} of {total})" if total > 1 else ""
        )
        out.append({"text": fallback, "blocks": [b.to_dict() for b in chunk]})
    return out
