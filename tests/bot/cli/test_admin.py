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
