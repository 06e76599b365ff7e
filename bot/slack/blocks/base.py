"""The building blocks every Slack payload is made of, and Slack's limits.

Blocks are built with slack_sdk's block models and serialised with ``to_dict()``, which
validates Slack's limits (3000-character texts, 75-character option labels...), so a
violation raises here, in tests, rather than being rejected by Slack in production.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from slack_sdk.models.basic_objects import EMPTY_ALLOWED_TYPE_AND_PROPERTY_LIST, JsonObject
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
)

from bot.rendering import in_zone, truncate
from bot.rendering import slack_escape as esc
from bot.slack import ids

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 3000
MAX_OPTIONS = 100
PAGE_SIZE = 10


# ---------------------------------------------------------------- validation


@functools.cache
def _validator_names(cls: type) -> tuple[str, ...]:
    """The ``@JsonValidator`` methods of a block model class (they are defined on the class)."""
    return tuple(
        name
        for name in dir(cls)
        if not name.startswith("__") and getattr(getattr(cls, name, None), "validator", False)
    )


def _validate_json(self: JsonObject) -> None:
    for name in _validator_names(type(self)):
        getattr(self, name)()


# slack_sdk's ``validate_json`` finds the validators again on every object of every message, by
# reading every attribute in ``dir(self)``, properties included: most of the cost of serialising a
# card. The same validators run here, found once per class; a violation raises as before.
JsonObject.validate_json = _validate_json  # type: ignore[method-assign]

_EMPTY_ALLOWED = frozenset((e["type"], e["property"]) for e in EMPTY_ALLOWED_TYPE_AND_PROPERTY_LIST)
_slack_non_null_attributes = JsonObject.get_non_null_attributes
_base_to_dict = JsonObject.to_dict


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if to_dict is None or not callable(to_dict):
        return value
    out = to_dict()
    if type(value).to_dict is _base_to_dict:
        return out  # built by _non_null_attributes below: already plain
    return {k: _plain(v) for k, v in out.items()}  # another class's to_dict: walk what it made


def _non_null_attributes(self: JsonObject) -> dict[str, Any]:
    """slack_sdk's ``get_non_null_attributes``, without its second walk of every nested dict.

    slack_sdk converts a nested object with its ``to_dict()`` and then walks the result again,
    at every level: a leaf is visited once per level above it. The output is the same.
    """
    if type(self).get_object_attribute is not JsonObject.get_object_attribute:
        return _slack_non_null_attributes(self)
    type_value = getattr(self, "type", None)
    out: dict[str, Any] = {}
    for key in sorted(self.attributes):
        value = getattr(self, key, None)
        if value is None:
            continue
        if (
            (type_value, key) not in _EMPTY_ALLOWED
            and hasattr(value, "__len__")
            and len(value) == 0
        ):
            continue
        out[key] = _plain(value)
    return out


JsonObject.get_non_null_attributes = _non_null_attributes  # type: ignore[method-assign]


# ---------------------------------------------------------------- basics


def md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate(text, MAX_TEXT))


def section(text: str, accessory: Any = None, block_id: str | None = None) -> SectionBlock:
    return SectionBlock(text=md(text), accessory=accessory, block_id=block_id)


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[md(text)])


def button(text: str, action_id: str, value: str, style: str | None = None) -> ButtonElement:
    return ButtonElement(text=truncate(text, 75), action_id=action_id, value=value, style=style)


def option(label: str, value: str) -> Option:
    return Option(label=truncate(label, 75), value=value)


def payload(
    blocks: Sequence[Block], text: str, *, limit: int = MAX_MESSAGE_BLOCKS
) -> list[dict[str, Any]]:
    if len(blocks) > limit:
        raise ValueError(f"{len(blocks)} blocks is over Slack's limit of {limit}")
    return [b.to_dict() for b in blocks]


def message(
    blocks: Sequence[Block],
    text: str,
    *,
    public: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    """A respond()/chat.postMessage payload. ``text`` is the notification fallback."""
    out: dict[str, Any] = {
        "text": truncate(text, MAX_TEXT),
        "blocks": payload(blocks, text),
        "response_type": "in_channel" if public else "ephemeral",
    }
    if replace:
        out["replace_original"] = True
    return out


def note(text: str, *, replace: bool = False) -> dict[str, Any]:
    return message([section(text)], text, replace=replace)


def warning(err: Exception) -> SectionBlock:
    """What went wrong, as one section: the start of every error reply and notice."""
    return section(f":warning: {esc(str(err))}")


def error_message(err: Exception, usage: str | None = None) -> dict[str, Any]:
    blocks: list[Block] = [warning(err)]
    if usage:
        blocks.append(context(f"Usage: `{esc(usage)}`"))
    return message(blocks, str(err))


def changed(text: str) -> dict[str, Any]:
    return note(f":white_check_mark: {text}")


def not_logged(err: Exception) -> dict[str, Any]:
    """A "Log to CRM" that failed after its form closed; nothing was stored."""
    return note(f":warning: Nothing was logged to the CRM: {esc(str(err))}")


def local_time(value: datetime | None, tz: str) -> str:
    """A time in the reader's zone, the zone named: ``Fri 04 Dec 2026 09:00 CET``."""
    if value is None:
        return "never"
    return in_zone(value, tz, "%a %d %b %Y %H:%M")


def one_line(text: str | None, limit: int) -> str:
    return truncate(" ".join((text or "").split()), limit)


def money(amount: Decimal | None, currency: str | None) -> str:
    if amount is None:
        return ""
    return f"{amount:,.2f} {currency or ''}".strip()


def page_button(verb: str, args: str, offset: int) -> ButtonElement:
    value = json.dumps({"verb": verb, "args": args, "offset": offset})
    if len(value) > 2000:
        value = json.dumps({"verb": verb, "args": args[:1500], "offset": offset})
    return button("Next page", ids.NEXT_PAGE, value)


def pager(
    blocks: list[Block], verb: str, args: str, offset: int, has_more: bool, shown: int
) -> None:
    if has_more:
        blocks.append(context(f"Showing {offset + 1}–{offset + shown}."))
        blocks.append(ActionsBlock(elements=[page_button(verb, args, offset + shown)]))
    elif offset:
        blocks.append(context(f"Showing {offset + 1}–{offset + shown} (the end)."))
