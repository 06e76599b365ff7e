"""bench/mail_quality.py as a module, for the tests that check its goals and cases."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]


@functools.cache
def bench() -> ModuleType:
    path = REPO / "bench" / "mail_quality.py"
    spec = importlib.util.spec_from_file_location("mail_quality", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module
