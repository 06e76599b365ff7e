"""The /crm help reply."""

from __future__ import annotations

from bot.handlers.commands import VERBS
from bot.slack.blocks.help import help_message


def test_help_has_every_verb_and_each_text_fits():
    out = help_message(VERBS)
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in out["blocks"])
    assert str(out["blocks"]).count("/crm ") >= 2 * len(VERBS)
