"""A satisfaction survey in a customer's Slack Connect channel: one question, five buttons."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock

from bot.slack import ids
from bot.slack.blocks.base import button, message, note, section

LABELS = {1: "1 very unhappy", 2: "2 unhappy", 3: "3 okay", 4: "4 happy", 5: "5 very happy"}


def survey_message(tokens: dict[int, str]) -> dict[str, Any]:
    """Each button carries its signed, expiring rating token."""
    return message(
        [
            section("*How happy are you with the help you got from us?*"),
            ActionsBlock(
                elements=[
                    button(LABELS[r], f"{ids.CSAT_RATE}{r}", tokens[r]) for r in sorted(tokens)
                ]
            ),
        ],
        "How did we do?",
    )


def survey_answered(rating: int) -> dict[str, Any]:
    return note(f"Thank you: your rating ({rating}/5) is recorded.", replace=True)
