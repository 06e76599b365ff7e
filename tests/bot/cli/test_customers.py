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


def test_phone_replaces_the_number_and_email_adds_an_address(crmbot, db):
    from sqlmodel import select

    from crm.models import AuditEvent

    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com", "--phone", "+44 20 7946 0958")
    code, out, err = crmbot(
        "customer", "update", "jane@acme.com", "phone=+44 20 7946 0000", "--json"
    )
    assert code == 0, err
    assert [c for c in json.loads(out)["contacts"] if c["kind"] == "phone"] == [
        {"kind": "phone", "value": "+442079460000"}
    ]
    code, out, _ = crmbot("customer", "update", "jane@acme.com", "email=j.doe@acme.com", "--json")
    emails = [c["value"] for c in json.loads(out)["contacts"] if c["kind"] == "email"]
    assert emails == ["jane@acme.com", "j.doe@acme.com"]
    with db.session() as s:
        removed = s.exec(select(AuditEvent).where(AuditEvent.action == "remove_contact")).one()
        added = s.exec(select(AuditEvent).where(AuditEvent.action == "add_contact")).all()
    assert removed.before == {"kind": "phone", "values": ["+442079460958"]}
    assert {"kind": "phone", "value": "+442079460000"} in [e.after for e in added]


def test_a_long_search_says_it_shows_the_best_matches(crmbot, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("name\n" + "".join(f"Acme Person {i}\n" for i in range(15)))
    crmbot("import", "customers", str(path))
    code, out, _ = crmbot("customer", "find", "acme person")
    assert "showing the best 10 matches (--limit N for more)" in out
    code, out, _ = crmbot("customer", "find", "acme person", "--limit", "20", "--json")
    assert len(json.loads(out)) == 15


def test_a_search_that_shows_everything_says_nothing_more(crmbot):
    crmbot("customer", "add", "Acme One", "--email", "one@acme.com")
    code, out, _ = crmbot("customer", "find", "acme one", "--limit", "1")
    assert code == 0 and "showing" not in out


def test_forget_erases_a_person_for_admins_and_export_gives_everything_first(crmbot, db):
    assert crmbot("user", "add", "Max", "--email", "max@ourco.com", "--role", "manager")[0] == 0
    code, _, err = crmbot(
        "customer",
        "add",
        "Wanda Forgetme",
        "--email",
        "wanda@forget.test",
        "--phone",
        "+1 555 0100",
    )
    assert code == 0, err
    assert crmbot("log", "wanda@forget.test", "call", "Wanda wants a quote")[0] == 0
    code, out, err = crmbot("--as", "max@ourco.com", "customer", "export", "wanda@forget.test")
    data = json.loads(out)
    assert code == 0, err
    assert data["customer"]["name"] == "Wanda Forgetme" and len(data["interactions"]) == 1
    code, _, err = crmbot("customer", "export", "wanda@forget.test", "--format", "csv")
    assert code == 2 and "not an export format" in err
    code, _, err = crmbot(
        "--as", "max@ourco.com", "customer", "forget", "wanda@forget.test", "--reason", "asked"
    )
    assert code == 2 and "admins" in err
    code, _, err = crmbot("customer", "forget", "wanda@forget.test", "--reason", "  ")
    assert code == 2 and "why" in err
    code, out, err = crmbot("customer", "forget", "wanda@forget.test", "--reason", "asked")
    assert code == 0 and "Forgot customer" in out and "record deleted" in out, err
    code, _, err = crmbot("customer", "show", "wanda@forget.test")
    assert code == 2
    code, out, _ = crmbot("audit", "verify")
    assert code == 0 and "scrubbed by erasures" in out
