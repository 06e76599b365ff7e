from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from bot.cli.main import app


def test_manifest_yaml_and_json_agree_and_point_at_the_url():
    runner = CliRunner()
    as_yaml = runner.invoke(app, ["slack", "manifest", "--url", "https://bot.example.com/"])
    as_json = runner.invoke(
        app, ["slack", "manifest", "--url", "https://bot.example.com", "--format", "json"]
    )
    assert as_yaml.exit_code == 0 and as_json.exit_code == 0, as_yaml.output
    data = yaml.safe_load(as_yaml.output)
    assert data.pop("_metadata") == {"major_version": 1, "minor_version": 1}
    assert data == json.loads(as_json.output)
    url = "https://bot.example.com/slack/events"
    assert data["features"]["slash_commands"][0]["url"] == url
    assert data["features"]["slash_commands"][0]["should_escape"] is True
    assert data["settings"]["interactivity"] == {
        "is_enabled": True,
        "request_url": url,
        "message_menu_options_url": url,
    }
    assert data["settings"]["event_subscriptions"]["request_url"] == url
    assert {"app_home_opened", "message.channels"} <= set(
        data["settings"]["event_subscriptions"]["bot_events"]
    )
    assert data["features"]["shortcuts"][0]["callback_id"] == "log_to_crm"
    assert data["features"]["app_home"]["home_tab_enabled"] is True
    assert {"commands", "chat:write", "users:read", "users:read.email", "channels:history"} <= set(
        data["oauth_config"]["scopes"]["bot"]
    )


def test_manifest_for_socket_mode_and_bad_urls():
    runner = CliRunner()
    sock = runner.invoke(app, ["slack", "manifest", "--socket-mode", "--format", "json"])
    data = json.loads(sock.output)
    assert (
        data["settings"]["socket_mode_enabled"] is True
        and "request_url" not in data["settings"]["interactivity"]
    )
    bad = runner.invoke(app, ["slack", "manifest", "--url", "http://insecure.example.com"])
    assert bad.exit_code != 0 and "https" in bad.output
    assert runner.invoke(app, ["slack", "manifest"]).exit_code != 0
