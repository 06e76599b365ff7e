"""The house rules: crm/ knows nothing of Slack, IMAP or the bot."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CRM = ("bot", "slack_bolt", "slack_sdk", "imapclient")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_crm_never_imports_transports():
    bad = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] in FORBIDDEN_IN_CRM)
        for path in (ROOT / "crm").rglob("*.py")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_mail_code_never_imports_slack():
    bad = [str(p) for p in (ROOT / "bot" / "mail").rglob("*.py")
           if any(n.split(".")[0] in ("slack_bolt", "slack_sdk") for n in _imports(p))]
    assert bad == []


def test_cli_command_modules_import_neither_main_nor_each_other():
    """bot/cli has no import circle: only main imports the command modules; they import common."""
    folder = ROOT / "bot" / "cli"
    commands = {p.stem for p in folder.glob("*.py")} - {"__init__", "__main__", "main", "common"}
    bad = {}
    for path in folder.glob("*.py"):
        if path.stem in ("main", "__main__"):
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        wrong = sorted(
            n for n in names
            if n == "bot.cli" or (n.startswith("bot.cli.") and n.split(".")[2] in commands | {"main"})
        )
        if wrong:
            bad[path.name] = wrong
    assert commands and bad == {}
