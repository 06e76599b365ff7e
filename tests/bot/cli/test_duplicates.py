"""`crmbot customer duplicates | not-duplicate | merge | unmerge`, and addresses from a CSV."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from crm.models import AuditEvent, Customer

pytestmark = pytest.mark.usefixtures("cli_timezone")

CSV = (
    "name,email,street,city,postcode,country\n"
    "Katherine Smith,kath@acme.com,12 Baker Street,London,nw1 6xe,UK\n"
    "Katharine Smith,ksmith@home.org,12 Baker St,London,NW1 6XE,UK\n"
    "Bob Stone,bob@initech.com,1 Main Street,Leeds,LS1 1AA,UK\n"
)


def _events(db) -> list[str]:
    with db.session() as session:
        return [e.action for e in session.exec(select(AuditEvent)).all()]


def test_imported_addresses_show_on_the_card_and_find_duplicates(crmbot, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(CSV)
    assert crmbot("import", "customers", str(path))[0] == 0
    code, out, _ = crmbot("customer", "show", "kath@acme.com")
    assert code == 0 and "address: 12 Baker Street, NW1 6XE London, UK" in out
    code, out, _ = crmbot("customer", "duplicates", "--json")
    pairs = json.loads(out)
    assert [(p["first"]["name"], p["second"]["name"]) for p in pairs] == [
        ("Katherine Smith", "Katharine Smith")
    ]
    assert "same street" in pairs[0]["reasons"] and pairs[0]["score"] >= 90
    code, out, _ = crmbot("customer", "duplicates")
    assert code == 0 and "same postcode" in out
    code, out, _ = crmbot("customer", "duplicates", "--min-score", "100", "--json")
    assert json.loads(out) == []


def test_not_duplicate_is_remembered(crmbot, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(CSV)
    crmbot("import", "customers", str(path))
    code, out, err = crmbot("customer", "not-duplicate", "kath@acme.com", "ksmith@home.org")
    assert code == 0, err
    assert "different customers" in out
    assert json.loads(crmbot("customer", "duplicates", "--json")[1]) == []


def test_merge_prints_its_number_and_unmerge_restores_both(crmbot, db):
    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")
    crmbot("customer", "add", "J. Doe", "--email", "jd@home.net", "--company", "Acme")
    code, out, _ = crmbot("customer", "merge", "jane@acme.com", "jd@home.net", "--json")
    merged = json.loads(out)
    assert code == 0 and merged["company"] == "Acme"
    code, out, _ = crmbot("customer", "unmerge", str(merged["merge_id"]), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["kept"]["company"] is None
    assert data["restored"]["name"] == "J. Doe"
    assert data["restored"]["contacts"] == [{"kind": "email", "value": "jd@home.net"}]


@pytest.mark.parametrize("case", ["unknown", "twice", "itself"])
def test_bad_merges_are_one_line_exit_2_and_write_nothing(crmbot, db, case):
    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")
    crmbot("customer", "add", "J. Doe", "--email", "jd@home.net")
    if case == "twice":
        merge_id = json.loads(crmbot("customer", "merge", "#1", "#2", "--json")[1])["merge_id"]
        crmbot("customer", "unmerge", str(merge_id))
        args = ("customer", "unmerge", str(merge_id))
    elif case == "unknown":
        args = ("customer", "unmerge", "99")
    else:
        args = ("customer", "merge", "#1", "#1")
    before = _events(db)
    code, out, err = crmbot(*args)
    assert code == 2
    assert len(err.strip().splitlines()) <= 2  # the message, and at most a hint
    assert {"unknown": "no merge #99", "twice": "undone already", "itself": "into itself"}[
        case
    ] in err.lower()
    assert _events(db) == before
    with db.session() as session:
        assert len(session.exec(select(Customer)).all()) == 2


def test_an_address_is_given_on_add_and_changed_on_update(crmbot):
    code, out, err = crmbot(
        "customer",
        "add",
        "Jane Doe",
        "--email",
        "jane@acme.com",
        "--street",
        "1 High St",
        "--postcode",
        "ls1 1aa",
        "--json",
    )
    assert code == 0, err
    assert (json.loads(out)["street"], json.loads(out)["postcode"]) == ("1 High St", "LS1 1AA")
    code, out, _ = crmbot("customer", "update", "jane@acme.com", "city=Leeds", "street=", "--json")
    assert (json.loads(out)["city"], json.loads(out)["street"]) == ("Leeds", None)


def test_detach_gives_an_address_back_as_a_lead_of_its_own(crmbot, db):
    assert crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")[0] == 0
    assert crmbot("customer", "update", "jane@acme.com", "email=jd@gmail.com")[0] == 0
    code, out, err = crmbot("customer", "detach", "jane@acme.com", "jd@gmail.com")
    assert code == 0, err
    assert out.strip() == "Detached jd@gmail.com from #1: it is lead #2 jd, with 0 interactions."
    code, out, _ = crmbot("customer", "show", "jd@gmail.com", "--json")
    assert code == 0 and json.loads(out)["status"] == "lead"
    before = _events(db)
    for args, message in (
        (("jane@acme.com", "jd@gmail.com"), "has no address jd@gmail.com"),
        (("jane@acme.com", "jane@acme.com"), "only address"),
        (("jane@acme.com", "not-an-address"), "is not an email address"),
    ):
        code, _, err = crmbot("customer", "detach", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert _events(db) == before and "detach" in before
