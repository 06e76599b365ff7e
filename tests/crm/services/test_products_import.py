from __future__ import annotations

import io

import pytest
from sqlmodel import func, select

from crm.models import AuditEvent, Interaction, Product, PurchaseLine
from crm.services import importer
from crm.services.errors import CRMError

PRODUCTS = """sku,name,category
P-1,Espresso beans,Coffee
P-2,Milk frother,Kitchen
P-1,Espresso beans again,Coffee
"""

BASKETS = """customer_id,date,amount,product,product_name,category,quantity
C-1,2026-01-05,12.50,P-1,Espresso beans,Coffee,2
C-1,2026-01-05,30.00,P-3,Grinder,Kitchen,
C-2,2026-01-06,12.50,P-1,,,1
C-2,2026-01-07,4.00,,,,
"""


def _count(db, model) -> int:
    with db.session() as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_import_products_adds_each_sku_once_and_a_second_import_changes_nothing(db, admin):
    with db.transaction() as s:
        result = importer.import_products(s, io.StringIO(PRODUCTS), actor=admin)
    assert (result.rows, result.created, result.skipped) == (3, 2, 1)
    with db.session() as s:
        first = s.exec(select(Product).where(Product.sku == "P-1")).one()
        assert (first.name, first.category) == ("Espresso beans", "Coffee")
        assert s.exec(select(AuditEvent).where(AuditEvent.entity == "product")).all()
    with db.transaction() as s:
        again = importer.import_products(s, io.StringIO(PRODUCTS), actor=admin)
    assert (again.created, again.skipped) == (0, 3)
    assert _count(db, Product) == 2


def test_transactions_with_products_get_line_items_and_reimport_adds_none(db, admin, settings):
    with db.transaction() as s:
        importer.import_products(s, io.StringIO(PRODUCTS), actor=admin)
    with db.transaction() as s:
        result = importer.import_transactions(
            s, io.StringIO(BASKETS), actor=admin, settings=settings
        )
    assert (result.rows, result.created, result.customers_created) == (4, 4, 2)
    with db.session() as s:
        lines = s.exec(
            select(
                Interaction.external_id,
                Product.sku,
                Product.name,
                Product.category,
                PurchaseLine.quantity,
            )
            .join(PurchaseLine, PurchaseLine.interaction_id == Interaction.id)
            .join(Product, Product.id == PurchaseLine.product_id)
        ).all()
        got = sorted((sku, name, category, qty) for _, sku, name, category, qty in lines)
        # P-3 was not in the catalogue: the row's name and category describe it.
        assert got == [
            ("P-1", "Espresso beans", "Coffee", 1),
            ("P-1", "Espresso beans", "Coffee", 2),
            ("P-3", "Grinder", "Kitchen", 1),
        ]
    with db.transaction() as s:
        again = importer.import_transactions(
            s, io.StringIO(BASKETS), actor=admin, settings=settings
        )
    assert (again.created, again.skipped) == (0, 4)
    assert _count(db, PurchaseLine) == 3 and _count(db, Product) == 3


def test_two_products_in_one_basket_at_the_same_price_are_two_purchases(db, admin, settings):
    text = "customer_id,date,amount,product\nC-1,2026-01-05,5,A\nC-1,2026-01-05,5,B\n"
    with db.transaction() as s:
        result = importer.import_transactions(s, io.StringIO(text), actor=admin, settings=settings)
    assert result.created == 2 and _count(db, PurchaseLine) == 2


@pytest.mark.parametrize(
    ("quantity", "message"),
    [("two", "not a number"), ("0", "whole number"), ("1.5", "whole number")],
)
def test_a_bad_quantity_names_its_line_and_nothing_is_written(
    db, admin, settings, quantity, message
):
    text = (
        "customer_id,date,amount,product,quantity\n"
        f"C-1,2026-01-05,5,A,1\nC-1,2026-01-06,5,B,{quantity}\n"
    )
    with pytest.raises(CRMError, match=f"Line 3: .*{message}"), db.transaction() as s:
        importer.import_transactions(s, io.StringIO(text), actor=admin, settings=settings)
    assert _count(db, Interaction) == 0 and _count(db, Product) == 0


def test_a_products_file_without_a_sku_column_or_with_an_empty_sku_is_refused(db, admin):
    with pytest.raises(CRMError, match="no sku column"), db.transaction() as s:
        importer.import_products(s, io.StringIO("name,category\nA,B\n"), actor=admin)
    with pytest.raises(CRMError, match="Line 3: The SKU is empty"), db.transaction() as s:
        importer.import_products(s, io.StringIO("sku,name\nA,x\n,y\n"), actor=admin)
    assert _count(db, Product) == 0
