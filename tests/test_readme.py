"""The README's commands are the ones that run: CI runs its test command exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)]


def test_get_started_uses_a_virtual_environment_and_says_which_python():
    start = _bash_blocks()[0]
    assert start.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e .")
    assert start.endswith("crmbot demo && crmbot customer find acme")
    assert "Python 3.11 or newer" in (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command_exactly():
    test_command = _bash_blocks()[1]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test_command
