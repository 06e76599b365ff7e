from __future__ import annotations

from sqlmodel import func, select

from crm.analytics import products
from crm.analytics.refresh import refresh
from crm.models import AnalyticsRun, ProductSuggestion
from tests.factories import add_customer


def test_a_failing_suggestion_step_never_fails_the_refresh(db, admin, settings, monkeypatch):
    add_customer(db, admin, name="Acme", email="jane@acme.com")

    def broken(*_args, **_kwargs):
        raise RuntimeError("rules went wrong")

    monkeypatch.setattr(products, "pick", broken)
    result = refresh(db, settings=settings, actor=admin)
    assert "rules went wrong" in result.meta["next_products"]["error"]
    with db.session() as s:
        assert s.exec(select(AnalyticsRun.status)).one() == "done"
        assert s.exec(select(func.count()).select_from(ProductSuggestion)).one() == 0


def test_no_purchase_lines_is_a_run_with_no_suggestions(db, admin, settings):
    add_customer(db, admin, name="Acme", email="jane@acme.com")
    result = refresh(db, settings=settings, actor=admin)
    assert result.meta["next_products"]["suggestions"] == 0
