"""``crmbot slack ...``: Slack set-up helpers (the app manifest)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from bot.slack.ids import SHORTCUT_LOG
from bot.slack.runtime import EVENTS_PATH

slack_app = typer.Typer(no_args_is_help=True, help="Slack app set-up.")

BOT_SCOPES = [
    "commands",
    "chat:write",
    "im:write",
    "users:read",
    "users:read.email",
    "channels:history",
    "channels:read",
    "groups:history",
    "groups:read",
]
BOT_EVENTS = ["app_home_opened", "message.channels", "message.groups"]


def manifest(url: str | None, *, name: str = "crmbot", socket_mode: bool = False) -> dict[str, Any]:
    """The app manifest: /crm, scopes, interactivity, events, the shortcut and App Home."""
    request_url = None
    if not socket_mode:
        if not url:
            raise typer.BadParameter("--url is required unless --socket-mode is given")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            raise typer.BadParameter("--url must be the bot's public https:// address")
        request_url = url.rstrip("/") + EVENTS_PATH
    command: dict[str, Any] = {
        "command": "/crm",
        "description": "Customers, deals and follow-ups",
        "usage_hint": "help | find acme | show jane@acme.com | deal 42 move proposal",
        "should_escape": True,  # mentions arrive as <@U…> and <#C…>, which the verbs expect
    }
    interactivity: dict[str, Any] = {"is_enabled": True}
    events: dict[str, Any] = {"bot_events": BOT_EVENTS}
    if request_url:
        command["url"] = request_url
        interactivity |= {"request_url": request_url, "message_menu_options_url": request_url}
        events["request_url"] = request_url
    return {
        "display_information": {
            "name": name,
            "description": "A CRM that lives in Slack and the support inbox.",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": [command],
            "shortcuts": [
                {
                    "name": "Log to CRM",
                    "type": "message",
                    "callback_id": SHORTCUT_LOG,
                    "description": "Store this message (or its thread) with a customer",
                }
            ],
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for plain data. Strings are written JSON-quoted, which YAML reads as is."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                inner = to_yaml(item, indent + 1).lstrip()
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(str(value), ensure_ascii=False)


@slack_app.command("manifest")
def manifest_command(
    url: Annotated[
        str | None, typer.Option(help="The bot's public base URL, e.g. https://bot.example.com")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
    name: Annotated[str, typer.Option(help="The app's name in Slack")] = "crmbot",
    socket_mode: Annotated[
        bool, typer.Option("--socket-mode", help="No public URL: connect out over Socket Mode")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
) -> None:
    """Print the app manifest to paste at https://api.slack.com/apps (Create, From a manifest)."""
    data = manifest(url, name=name, socket_mode=socket_mode)
    if fmt == "json" or json_out:
        typer.echo(json.dumps(data, indent=2))
    elif fmt == "yaml":
        typer.echo("_metadata:\n  major_version: 1\n  minor_version: 1\n" + to_yaml(data))
    else:
        raise typer.BadParameter("--format must be yaml or json")


def register(app: typer.Typer) -> None:
    """Add ``crmbot slack ...`` to the root command."""
    app.add_typer(slack_app, name="slack")
