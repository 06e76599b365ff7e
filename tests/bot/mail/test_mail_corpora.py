"""Quality goals on the public corpora (skipped when ../shared/corpora is absent)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bot.mail.mail_quality import bench

REPO = Path(__file__).resolve().parents[3]
CORPORA = REPO.parent / "shared" / "corpora"

pytestmark = pytest.mark.skipif(not CORPORA.is_dir(), reason="shared corpora not available")


@pytest.fixture(scope="module")
def scores() -> dict[str, object]:
    return {s.name: s for s in bench().run(CORPORA)}


def test_every_goal_is_met(scores: dict[str, object]) -> None:
    missed = []
    for name, s in scores.items():
        need = int(re.match(r">=\s*(\d+)", s.goal).group(1))
        if s.right < need:
            missed.append(f"{name}: {s.right}/{s.total} (goal {s.goal}); "
                          f"failing: {s.failures[:10]}")
    assert not missed, "\n".join(missed)
