"""The project's own hand-written cases (tests/bot/mail/cases/), one test per message.

Each folder holds one kind of miss found on real mail (forwards of forwards, header-like
lines in ordinary mail, HTML-only Apple Mail forwards, Outlook signatures above the quote,
inline replies, list and report mail), written in the formats of several mail clients;
``expected.json`` says what a right reading is. ``bench/mail_quality.py`` scores the same
cases, with the same check.
"""

from __future__ import annotations

import pytest

from tests.bot.mail.mail_quality import bench

BENCH = bench()
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
