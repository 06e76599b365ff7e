"""`crmbot import ...` run in-process, then the imported data used by `crmbot user ...`."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


def test_import_and_users(crmbot, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("name,email\nAnn,ann@x-corp.com\nBen,ben@y-corp.com\n")
    code, out, _ = crmbot("import", "customers", str(path), "--json")
    assert code == 0 and json.loads(out)["created"] == 2
    code, out, _ = crmbot(
        "user", "add", "Rita Rep", "--email", "rita@ourco.com", "--role", "rep", "--json"
    )
    assert json.loads(out)["role"] == "rep"
    code, out, _ = crmbot("user", "role", "rita@ourco.com", "manager", "--json")
    assert json.loads(out)["role"] == "manager"
    code, _, err = crmbot("--as", "rita@ourco.com", "user", "role", "rita@ourco.com", "admin")
    assert code == 2 and "Only admins" in err
    code, _, err = crmbot("import", "customers", str(tmp_path / "missing.csv"))
    assert code == 2 and "no file" in err


# One good record per kind: (header, values); the bad files below are built around it.
GOOD = {
    "customers": ("name,email", "Ann Smith,ann@x-corp.com"),
    "deals": ("customer,title", "jane@acme.com,Team plan"),
    "transactions": ("customer_id,date,amount", "C-1,2026-01-02,10"),
    "products": ("sku,name,category", "P-1,Espresso beans,Coffee"),
}

# (what is wrong, the file's bytes from (header, good record), what the one line must say)
BAD_FILES = [
    (
        "a quote never closed",
        lambda h, g: f'{h}\n{g}\n"{g}\n{g}\n'.encode(),
        "Line 3: a quote opened in this record is never closed",
    ),
    (
        "a record that swallows the next",
        lambda h, g: f'{h}\n"{g}\n{g}",{g.split(",", 1)[1]}\n'.encode(),
        "Line 2: the",
    ),
    (
        "text after a closing quote",
        lambda h, g: f'{h}\n"{g.split(",")[0]}" and more,{g.split(",", 1)[1]}\n'.encode(),
        "Line 2: a closing quote is followed by more text",
    ),
    ("a NUL byte", lambda h, g: f"{h}\n{g}\n{g}\x00\n".encode(), "Line 3: the file holds a NUL"),
    (
        "a value over the csv module's limit",
        lambda h, g: f'{h}\n"{"x" * 140_000}",{g.split(",", 1)[1]}\n'.encode(),
        "Line 2: a value is longer than 131,072 characters",
    ),
    (
        "a column named twice",
        lambda h, g: f"{h},{h.split(',')[0].upper()}\n{g},x\n".encode(),
        "Line 1: the column",
    ),
    ("a value too many", lambda h, g: f"{h}\n{g}\n{g},extra\n".encode(), "Line 3: "),
    ("not UTF-8", lambda h, g: f"{h}\n{g}\n".encode() + b"Jos\xe9,x\n", "Line 3: "),
    ("nothing at all", lambda h, g: b"", "The file is empty"),
]


@pytest.mark.parametrize("kind", sorted(GOOD))
@pytest.mark.parametrize(("problem", "make", "says"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_malformed_csv_is_one_line_naming_its_line_exit_2_and_nothing_written(
    crmbot, db, tmp_path, kind, problem, make, says
):
    from sqlmodel import func, select

    from crm.models import AuditEvent, Customer, Deal, Interaction

    crmbot("customer", "add", "Jane", "--email", "jane@acme.com")

    def counts() -> list[int]:
        with db.session() as s:
            return [
                s.exec(select(func.count()).select_from(m)).one()
                for m in (Customer, Deal, Interaction, AuditEvent)
            ]

    before = counts()
    header, good = GOOD[kind]
    path = tmp_path / "bad.csv"
    path.write_bytes(make(header, good))
    code, out, err = crmbot("import", kind, str(path))
    assert code == 2, (problem, out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and says in err, err
    assert counts() == before


def test_a_value_that_runs_over_lines_says_which_lines(crmbot, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text('name,email\n"Ann Smith,ann@x-corp.com\nBen Jones",ben@y-corp.com\n')
    code, _, err = crmbot("import", "customers", str(path))
    assert code == 2
    assert "Line 2: the name runs over lines 2 to 3" in err and "quote left open" in err


def test_a_quoted_value_may_hold_the_separator_and_a_doubled_quote(crmbot, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text('name,email,company\n"Smith, Ann",ann@x-corp.com,"The ""Best"" Co"\n')
    code, out, err = crmbot("import", "customers", str(path), "--json")
    assert code == 0, err
    code, out, _ = crmbot("customer", "show", "ann@x-corp.com", "--json")
    shown = json.loads(out)
    assert (shown["name"], shown["company"]) == ("Smith, Ann", 'The "Best" Co')


def test_importing_the_same_deals_file_twice_changes_nothing(crmbot, tmp_path):
    crmbot("customer", "add", "Jane", "--email", "jane@acme.com")
    path = tmp_path / "deals.csv"
    path.write_text("customer,title,amount\njane@acme.com,Team plan,12k\njane@acme.com,Add-on,1k\n")
    code, out, _ = crmbot("import", "deals", str(path), "--json")
    assert code == 0 and json.loads(out)["created"] == 2
    code, out, _ = crmbot("import", "deals", str(path), "--json")
    assert code == 0 and (json.loads(out)["created"], json.loads(out)["skipped"]) == (0, 2)
    code, out, _ = crmbot("deal", "list", "--json")
    assert len(json.loads(out)) == 2


def test_import_products_then_transactions_with_line_items(crmbot, tmp_path):
    products = tmp_path / "products.csv"
    products.write_text("sku,name,category\nP-1,Espresso beans,Coffee\nP-2,Frother,Kitchen\n")
    code, out, _ = crmbot("import", "products", str(products))
    assert code == 0 and "Imported products from products.csv: 2 rows, 2 added" in out
    baskets = tmp_path / "baskets.csv"
    baskets.write_text(
        "customer_id,date,amount,product,quantity\n"
        "C-1,2026-01-02,10,P-1,2\nC-1,2026-01-02,25,P-2,\n"
    )
    code, out, _ = crmbot("import", "transactions", str(baskets), "--json")
    assert code == 0 and json.loads(out)["created"] == 2
    baskets.write_text("customer_id,date,amount,product,quantity\nC-1,2026-01-03,10,P-1,-1\n")
    code, _, err = crmbot("import", "transactions", str(baskets))
    assert code == 2 and "Line 2: The quantity '-1' is not a whole number" in err


def test_a_row_with_a_known_phone_and_a_like_name_is_attached_not_made_twice(crmbot, db, tmp_path):
    from sqlmodel import select

    from crm.models import AuditEvent, ContactPoint, Customer

    first = tmp_path / "first.csv"
    first.write_text("name,email,phone\nJane Doe,jane@acme.com,+49 30 1234567\n")
    assert crmbot("import", "customers", str(first))[0] == 0
    second = tmp_path / "second.csv"
    second.write_text(
        "name,email,phone\n"
        "Doe Jane,jane.doe@gmail.com,+49 (30) 1234-567\n"  # the same person, a new address
        "Ben Other,ben@other.com,\n"
    )
    code, out, _ = crmbot("import", "customers", str(second), "--json")
    assert code == 0 and json.loads(out) | {"rows": 2} == {
        "rows": 2, "created": 1, "skipped": 0, "customers_created": 1, "attached": 1,
    }  # fmt: skip
    with db.session() as s:
        [jane] = s.exec(select(Customer).where(Customer.name == "Jane Doe")).all()
        emails = set(s.exec(select(ContactPoint.value).where(ContactPoint.customer_id == jane.id)))
        assert {"jane@acme.com", "jane.doe@gmail.com"} <= emails
        assert len(s.exec(select(Customer)).all()) == 2
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "attach")).one()
    assert event.entity_id == str(jane.id) and event.after["reasons"].startswith("same phone")
    # The same phone under another name is not the same person: the file is refused, as before.
    third = tmp_path / "third.csv"
    third.write_text("name,email,phone\nBob Stranger,bob@x.com,+49 30 1234567\n")
    code, _, err = crmbot("import", "customers", str(third))
    assert code == 2 and "+49301234567 belongs to two customers" in err
