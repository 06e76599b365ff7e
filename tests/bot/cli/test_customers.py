"""`crmbot customer ...`, run in-process."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


def test_customer_lifecycle_with_json(crmbot):
    code, out, _ = crmbot(
        "customer",
        "add",
        "Jane Doe",
        "--email",
        "jane@acme.com",
        "--company",
        "Acme Corp",
        "--json",
    )
    assert code == 0
    jane = json.loads(out)
    assert jane["domain"] == "acme.com" and jane["contacts"] == [
        {"kind": "email", "value": "jane@acme.com"}
    ]
    code, out, _ = crmbot("customer", "find", "acme", "--json")
    assert [r["id"] for r in json.loads(out)] == [jane["id"]]
    code, out, _ = crmbot(
        "customer", "update", "jane@acme.com", "status=active", "tags=vip", "--json"
    )
    assert json.loads(out)["status"] == "active"
    code, out, _ = crmbot("customer", "show", "Jane Doe")
    assert code == 0 and "Jane Doe" in out and "jane@acme.com" in out


def test_names_with_brackets_are_printed_as_written(crmbot):
    code, out, err = crmbot("customer", "add", "Acme [/bold] Ltd [eu]", "--email", "x@acme-eu.com")
    assert code == 0 and "Acme [/bold] Ltd [eu]" in out, err
    code, out, _ = crmbot("customer", "find", "acme")
    assert code == 0 and "[eu]" in out
