from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlmodel import func, select

from crm.demo import generate_demo
from crm.models import Interaction, Product, PurchaseLine


def test_every_demo_purchase_has_a_line_item_with_co_purchase_structure(db, settings):
    with db.transaction() as s:
        summary = generate_demo(
            s, settings=settings, customers=400, seed=7, anchor=date(2026, 11, 23)
        )
    with db.session() as s:
        purchases = s.exec(
            select(func.count()).select_from(Interaction).where(Interaction.channel == "purchase")
        ).one()
        rows = s.exec(
            select(Interaction.customer_id, Product.sku)
            .join(PurchaseLine, PurchaseLine.interaction_id == Interaction.id)
            .join(Product, Product.id == PurchaseLine.product_id)
        ).all()
    assert purchases > 300 and summary.purchase_lines == purchases == len(rows)
    bought: dict[int, set[str]] = defaultdict(set)
    for cid, sku in rows:
        bought[cid].add(sku)
    buyers = len(bought)

    def share(target: str, given: str | None = None) -> float:
        pool = [b for b in bought.values() if given is None or given in b]
        return sum(target in b for b in pool) / max(1, len(pool))

    # Customers on the Business plan buy single sign-on far more often than customers at large,
    # and Starter-plan customers rarely buy the audit log.
    assert buyers > 100
    assert share("ADD-SSO", "PLAN-BIZ") > 1.5 * share("ADD-SSO")
    assert share("ADD-AUDIT", "PLAN-START") < share("ADD-AUDIT")


def test_a_second_seed_reuses_the_catalogue(db, settings):
    for seed in (1, 2):
        with db.transaction() as s:
            generate_demo(s, settings=settings, customers=50, seed=seed, anchor=date(2026, 11, 23))
    with db.session() as s:
        assert s.exec(select(func.count()).select_from(Product)).one() == 16
