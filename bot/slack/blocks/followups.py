"""Follow-ups: one line each with Mark done / Snooze buttons, and the list of a rep's follow-ups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block

from bot.rendering import slack_escape as esc
from bot.rendering import truncate
from bot.slack import ids
from bot.slack.blocks.base import button, local_time, message, note, pager, section
from crm.models import FollowUp


def follow_up_actions(f: FollowUp) -> ActionsBlock:
    fid = str(f.id)
    return ActionsBlock(
        block_id=f"followup:{fid}",
        elements=[
            button("Mark done", ids.FOLLOW_UP_DONE, fid, style="primary"),
            button("Snooze 1 day", ids.FOLLOW_UP_SNOOZE_DAY, fid),
            button("Snooze 1 week", ids.FOLLOW_UP_SNOOZE_WEEK, fid),
        ],
    )


def follow_up_line(f: FollowUp, customer_name: str | None, tz: str) -> str:
    who = esc(customer_name) if customer_name else f"customer #{f.customer_id}"
    note_text = f" · {esc(truncate(f.note, 300))}" if f.note else ""
    return f"#{f.id} *{who}* · due {local_time(f.due_at, tz)}{note_text}"


def follow_up_list(
    items: Sequence[FollowUp], names: dict[int, str], *, tz: str, offset: int, has_more: bool
) -> dict[str, Any]:
    if not items:
        return note("You have no open follow-ups.")
    blocks: list[Block] = [section("*Your follow-ups, due first*")]
    for f in items:
        blocks.append(section(follow_up_line(f, names.get(f.customer_id), tz)))
        blocks.append(follow_up_actions(f))
    pager(blocks, "followups", "", offset, has_more, len(items))
    return message(blocks, "Your follow-ups")
