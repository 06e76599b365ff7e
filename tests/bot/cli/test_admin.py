"""`crmbot demo`, run in-process."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


def test_demo_then_find_acme(crmbot):
    code, out, _ = crmbot("demo", "--customers", "200", "--seed", "3", "--json")
    assert code == 0 and json.loads(out)["customers"] == 200
    code, out, _ = crmbot("customer", "find", "acme", "--json")
    assert code == 0 and json.loads(out)
    code, _, err = crmbot("demo", "--customers", "200", "--seed", "3")
    assert code == 2 and "already" in err


def test_demo_shows_its_progress_on_a_terminal(crmbot, monkeypatch):
    import io

    from rich.console import Console

    from bot.cli import common

    screen = io.StringIO()
    monkeypatch.setattr(
        common, "err_console", Console(file=screen, force_terminal=True, width=100), raising=False
    )
    code, out, _ = crmbot("demo", "--customers", "600", "--seed", "4")
    assert code == 0 and "600 customers" in out
    shown = screen.getvalue()
    assert "interactions" in shown and "600/600" in shown
