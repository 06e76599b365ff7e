"""Quality goals on the public corpora (skipped when ../shared/corpora is absent)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CORPORA = REPO.parent / "shared" / "corpora"

pytestmark = pytest.mark.skipif(not CORPORA.is_dir(), reason="shared corpora not available")


@pytest.fixture(scope="module")
def scores() -> dict[str, object]:
    path = REPO / "bench" / "mail_quality.py"
    spec = importlib.util.spec_from_file_location("mail_quality", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while being built
    spec.loader.exec_module(mod)
    return {s.name: s for s in mod.run(CORPORA)}


def test_every_goal_is_met(scores: dict[str, object]) -> None:
    missed = []
    for name, s in scores.items():
        need = int(re.match(r">=\s*(\d+)", s.goal).group(1))
        if s.right < need:
            missed.append(f"{name}: {s.right}/{s.total} (goal {s.goal}); "
                          f"failing: {s.failures[:10]}")
    assert not missed, "\n".join(missed)
