from __future__ import annotations

import io
from decimal import Decimal

import pytest
from sqlmodel import func, select

from crm.models import ContactPoint, Customer, Deal, Interaction
from crm.services import importer
from crm.services.errors import CRMError
from tests.factories import add_customer

CUSTOMERS = """Name,Email,Company,Status,Tags,Customer ID
Jane Doe,jane@acme.com,Acme Corp,active,vip;eu,C-1
Bob Stone,bob@initech.com,Initech,lead,,C-2
Jane Dup,JANE@acme.com,Acme Corp,active,,
"""


def _count(db, model) -> int:
    with db.session() as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_import_customers_then_again_changes_nothing(db, admin):
    with db.transaction() as s:
        result = importer.import_customers(s, io.StringIO(CUSTOMERS), actor=admin)
    assert (result.rows, result.created, result.skipped) == (3, 2, 1)
    with db.session() as s:
        jane = s.exec(select(Customer).where(Customer.external_id == "C-1")).one()
        assert jane.tags == ["eu", "vip"] and jane.domain == "acme.com" and jane.status == "active"
    with db.transaction() as s:
        again = importer.import_customers(s, io.StringIO(CUSTOMERS), actor=admin)
    assert (again.created, again.skipped) == (0, 3)
    assert _count(db, Customer) == 2 and _count(db, ContactPoint) == 2


def test_a_bad_row_names_its_line_and_nothing_is_written(db, admin):
    bad = "name,email\nGood One,good@acme.com\nBad One,not-an-email\n"
    with pytest.raises(CRMError, match="Line 3"), db.transaction() as s:
        importer.import_customers(s, io.StringIO(bad), actor=admin)
    assert _count(db, Customer) == 0


def test_a_file_without_the_needed_columns_is_refused(db, admin):
    with pytest.raises(CRMError, match="no name column"), db.transaction() as s:
        importer.import_customers(s, io.StringIO("foo,bar\n1,2\n"), actor=admin)


def test_semicolon_files_are_read_too(db, admin):
    with db.transaction() as s:
        result = importer.import_customers(s, io.StringIO("name;email\nAnn;ann@x-corp.com\n"), actor=admin)
    assert result.created == 1


def test_import_deals_by_customer_email_or_id(db, admin, settings):
    add_customer(db, admin, "Jane", "jane@acme.com")
    with db.transaction() as s:
        importer.import_customers(s, io.StringIO("name,customer_id\nBob,C-2\n"), actor=admin)
    csv_text = "customer,title,amount,stage,close_date\njane@acme.com,Team plan,12k,proposal,2026-12-31\nC-2,Starter,900,won,\n"
    with db.transaction() as s:
        result = importer.import_deals(s, io.StringIO(csv_text), actor=admin, settings=settings)
    assert result.created == 2
    with db.session() as s:
        deals = s.exec(select(Deal).order_by(Deal.id)).all()
        assert [(d.stage, d.status, d.amount) for d in deals] == [("proposal", "open", Decimal("12000.00")), ("won", "won", Decimal("900.00"))]
    with pytest.raises(CRMError, match="Line 2: No customer matches"), db.transaction() as s:
        importer.import_deals(s, io.StringIO("customer,title\nnobody@x.com,Deal\n"), actor=admin, settings=settings)


TRANSACTIONS = """customer_id,date,amount
00001,19970101,11.77
00001,19970101,11.77
00002,1997-01-12,12.00
00001,1997-02-02,20.76
"""


def test_transactions_become_purchases_and_reimport_is_idempotent(db, admin, settings):
    with db.transaction() as s:
        result = importer.import_transactions(s, io.StringIO(TRANSACTIONS), actor=admin, settings=settings)
    assert (result.rows, result.created, result.customers_created) == (4, 4, 2)
    with db.transaction() as s:
        again = importer.import_transactions(s, io.StringIO(TRANSACTIONS), actor=admin, settings=settings)
    assert (again.created, again.skipped, again.customers_created) == (0, 4, 0)
    with db.session() as s:
        total = s.exec(select(func.sum(Interaction.amount)).where(Interaction.channel == "purchase")).one()
        assert Decimal(total) == Decimal("56.30")
        first = s.exec(select(Customer).where(Customer.external_id == "00001")).one()
        assert first.status == "active" and first.created_at.year == 1997


def test_bad_transaction_date_is_reported(db, admin, settings):
    with pytest.raises(CRMError, match="Line 2"), db.transaction() as s:
        importer.import_transactions(s, io.StringIO("customer_id,date,amount\n1,yesterday-ish,3\n"), actor=admin, settings=settings)
    assert _count(db, Interaction) == 0


def test_new_customers_sharing_an_email_in_one_file(db, admin, settings):
    text = "customer_id,date,amount,email,name\nC1,2026-01-02,5,shared@family.com,Ann\nC2,2026-01-03,7,shared@family.com,Ben\n"
    with db.transaction() as s:
        result = importer.import_transactions(s, io.StringIO(text), actor=admin, settings=settings)
    assert (result.created, result.customers_created) == (2, 2)
    with db.session() as s:
        points = s.exec(select(ContactPoint)).all()
        assert [(p.value) for p in points] == ["shared@family.com"]


def test_overlong_names_in_transactions_are_reported_with_their_line(db, admin, settings):
    text = "customer_id,date,amount,name\nC1,2026-01-02,5," + "x" * 300 + "\n"
    with pytest.raises(CRMError, match="Line 2"), db.transaction() as s:
        importer.import_transactions(s, io.StringIO(text), actor=admin, settings=settings)


DEALS = """customer,title,amount,stage
jane@acme.com,Team plan,12k,proposal
jane@acme.com,Support add-on,900,lead
bob@initech.com,Team plan,5k,won
jane@acme.com,  team   PLAN ,12k,proposal
"""


def test_importing_the_same_deals_twice_changes_nothing(db, admin, settings):
    from crm.models import AuditEvent, DealStageChange

    add_customer(db, admin, "Jane", "jane@acme.com")
    add_customer(db, admin, "Bob", "bob@initech.com")
    with db.transaction() as s:
        first = importer.import_deals(s, io.StringIO(DEALS), actor=admin, settings=settings)
    # The last row is the first one again (case and spacing aside): one deal, not two.
    assert (first.rows, first.created, first.skipped) == (4, 3, 1)
    counts = (_count(db, Deal), _count(db, DealStageChange), _count(db, AuditEvent))
    with db.transaction() as s:
        again = importer.import_deals(s, io.StringIO(DEALS), actor=admin, settings=settings)
    assert (again.rows, again.created, again.skipped) == (4, 0, 4)
    assert (_count(db, Deal), _count(db, DealStageChange)) == counts[:2]


def test_an_external_deal_id_tells_deals_apart_and_finds_them_again(db, admin, settings):
    add_customer(db, admin, "Jane", "jane@acme.com")
    text = "deal_id,customer,title,amount\nD-1,jane@acme.com,Renewal,10\nD-2,jane@acme.com,Renewal,12\n"
    with db.transaction() as s:
        first = importer.import_deals(s, io.StringIO(text), actor=admin, settings=settings)
    assert first.created == 2  # two renewals of one customer, told apart by their ids
    renamed = "deal_id,customer,title,amount\nD-1,jane@acme.com,Renewal 2025,10\nD-3,jane@acme.com,Renewal,15\n"
    with db.transaction() as s:
        again = importer.import_deals(s, io.StringIO(renamed), actor=admin, settings=settings)
    assert (again.created, again.skipped) == (1, 1)
    with db.session() as s:
        assert sorted(s.exec(select(Deal.external_id)).all()) == ["D-1", "D-2", "D-3"]


def test_an_imported_deal_without_an_owner_gets_its_customers(db, admin, settings):
    from tests.conftest import make_user
    from crm.models import Role

    rita, _ = make_user(db, "Rita", Role.rep)
    add_customer(db, admin, "Jane", "jane@acme.com", owner_id=rita.id)
    with db.transaction() as s:
        importer.import_deals(s, io.StringIO("customer,title\njane@acme.com,Plan\n"), actor=admin, settings=settings)
    with db.session() as s:
        assert s.exec(select(Deal.owner_id)).one() == rita.id


def test_a_doubled_quote_far_down_the_file_is_one_quote(db, admin):
    rows = "".join(f"Person {i},p{i}@x-corp.com\n" for i in range(400))  # past the sniffed part
    text = "name,email\n" + rows + '"The ""Boss""",boss@x-corp.com\n'
    with db.transaction() as s:
        assert importer.import_customers(s, io.StringIO(text), actor=admin).created == 401
    with db.session() as s:
        boss = s.exec(select(Customer).where(Customer.name_key.startswith("the"))).one()
        assert boss.name == 'The "Boss"'
