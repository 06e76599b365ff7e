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
