from __future__ import annotations

from datetime import date

from sqlmodel import func, select

from crm.demo import generate_demo
from crm.models import Customer, Deal, DealStageChange, Interaction
from crm.services import customers


def _fingerprint(db) -> tuple:
    with db.session() as s:
        names = tuple(s.exec(select(Customer.name).order_by(Customer.id).limit(50)))
        counts = tuple(s.exec(select(func.count()).select_from(m)).one() for m in (Customer, Deal, DealStageChange, Interaction))
        revenue = s.exec(select(func.sum(Interaction.amount))).one()
    return names, counts, str(revenue)


def test_demo_is_deterministic_and_realistic(db, settings, tmp_path):
    from crm.db import Database

    with db.transaction() as s:
        summary = generate_demo(s, settings=settings, customers=400, seed=7, anchor=date(2026, 11, 23))
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.upgrade()
    with other.transaction() as s:
        generate_demo(s, settings=settings, customers=400, seed=7, anchor=date(2026, 11, 23))
    assert _fingerprint(db) == _fingerprint(other)
    assert summary.customers == 400
    assert 3_000 <= summary.interactions <= 5_000
    assert summary.deals > 100 and summary.purchases > 300 and summary.quiet_customers > 20
    with db.session() as s:
        # every stage history is one chain that ends where the deal is
        for deal in s.exec(select(Deal)).all()[:100]:
            path = s.exec(select(DealStageChange).where(DealStageChange.deal_id == deal.id).order_by(DealStageChange.id)).all()
            assert path[0].from_stage is None
            assert all(a.to_stage == b.from_stage for a, b in zip(path, path[1:], strict=False))
            assert path[-1].to_stage == deal.stage
        # nothing happens in the future
        latest = s.exec(select(func.max(Interaction.occurred_at))).one()
        assert str(latest) < "2026-11-23"
        assert customers.find_customers(s, "acme")
