"""The shapes of Slack payloads the listeners read, checked before any listener runs.

A request that passed the signature check came from Slack (or from someone holding the signing
secret); its payload still gets checked, so that a missing field is refused with a 400 rather
than failing inside a listener. Only the fields the listeners rely on are required; Slack adds
fields freely and those pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# payload type -> {dotted path: the type that must be there}
_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "block_actions": {"user.id": str, "actions": list},
    "block_suggestion": {"user.id": str, "action_id": str},
    "view_submission": {"user.id": str, "view.callback_id": str, "view.state.values": dict},
    "view_closed": {"user.id": str, "view.callback_id": str},
    "message_action": {"user.id": str, "callback_id": str, "trigger_id": str, "message": dict},
    "shortcut": {"user.id": str, "callback_id": str, "trigger_id": str},
    "event_callback": {"event": dict, "event.type": str},
}
# Payloads that only read (menus' type-ahead, Slack's URL check): the same one may come again.
READ_ONLY = frozenset({"block_suggestion", "url_verification"})

_SLASH_COMMAND: dict[str, type | tuple[type, ...]] = {"command": str, "user_id": str}


def _at(body: Mapping[str, Any], path: str) -> Any:
    value: Any = body
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def problem(body: Any) -> str | None:
    """What makes ``body`` unusable for our listeners, or None when it is fine."""
    if not isinstance(body, Mapping):
        return "the payload is not an object"
    kind = body.get("type")
    required = _REQUIRED.get(kind) if isinstance(kind, str) else None
    if required is None and "command" in body:
        required = _SLASH_COMMAND
    for path, wanted in (required or {}).items():
        if not isinstance(_at(body, path), wanted):
            return f"{kind or 'command'} payload without a valid {path}"
    if kind == "block_actions":
        actions = body["actions"]
        if not actions or not all(
            isinstance(a, Mapping) and isinstance(a.get("action_id"), str) for a in actions
        ):
            return "block_actions payload with an action that has no action_id"
    return None
