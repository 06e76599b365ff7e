"""The project's own hand-written cases (tests/bot/mail/cases/), one test per message.

Each folder holds one kind of miss found on real mail (forwards of forwards, header-like
lines in ordinary mail, HTML-only Apple Mail forwards, Outlook signatures above the quote,
inline replies, list and report mail), written in the formats of several mail clients;
``expected.json`` says what a right reading is. ``bench/mail_quality.py`` scores the same
cases, with the same check.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


def _bench() -> ModuleType:
    path = REPO / "bench" / "mail_quality.py"
    spec = importlib.util.spec_from_file_location("mail_quality", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
CASES = BENCH.own_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_is_read_right(name: str) -> None:
    assert BENCH.check_case(name, CASES[name]) == []


def test_every_case_file_has_expectations_and_every_kind_several_clients() -> None:
    files = {str(p.relative_to(BENCH.OWN_CASES)) for p in BENCH.OWN_CASES.rglob("*.eml")}
    assert files == set(CASES)
    kinds: dict[str, int] = {}
    for name in CASES:
        kinds[name.split("/")[0]] = kinds.get(name.split("/")[0], 0) + 1
    assert len(kinds) == 6 and min(kinds.values()) >= 4
