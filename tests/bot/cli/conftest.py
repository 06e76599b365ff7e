"""The settings of the customer, deal, import, user, admin and main command tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def cli_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Those tests run crmbot with CRM_TIMEZONE=Europe/Berlin (``pytestmark`` in each module)."""
    monkeypatch.setenv("CRM_TIMEZONE", "Europe/Berlin")
