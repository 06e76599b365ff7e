"""Customer value from the latest analytics run: one customer's, or the most valuable."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from crm.models import AnalyticsRun, Customer, CustomerValue


def _latest_run_id(session: Session) -> int | None:
    """The latest finished refresh (the same run the card's segment and risk come from)."""
    return session.exec(
        select(AnalyticsRun.id)
        .where(AnalyticsRun.kind == "refresh", AnalyticsRun.status == "done")
        .order_by(col(AnalyticsRun.finished_at).desc(), col(AnalyticsRun.id).desc())
        .limit(1)
    ).first()


@dataclass(frozen=True)
class ValueView:
    customer_id: int
    expected_spend: float
    expected_purchases: float
    p_alive: float
    horizon_months: int


def _view(v: CustomerValue) -> ValueView:
    return ValueView(
        customer_id=v.customer_id,
        expected_spend=v.expected_spend,
        expected_purchases=v.expected_purchases,
        p_alive=v.p_alive,
        horizon_months=v.horizon_months,
    )


def latest_value(session: Session, customer_id: int) -> ValueView | None:
    """The customer's expected value in the latest finished refresh; None if it has none."""
    run_id = _latest_run_id(session)
    if run_id is None:
        return None
    row = session.exec(
        select(CustomerValue).where(
            CustomerValue.run_id == run_id, CustomerValue.customer_id == customer_id
        )
    ).first()
    return _view(row) if row is not None else None


def most_valuable(
    session: Session, *, limit: int = 10, owner_id: int | None = None
) -> list[tuple[Customer, ValueView]]:
    """Customers by expected spend in the latest run, highest first (optionally one owner's)."""
    run_id = _latest_run_id(session)
    if run_id is None:
        return []
    stmt = (
        select(CustomerValue, Customer)
        .join(Customer, col(Customer.id) == CustomerValue.customer_id)
        .where(CustomerValue.run_id == run_id)
        .order_by(col(CustomerValue.expected_spend).desc(), col(CustomerValue.customer_id))
        .limit(limit)
    )
    if owner_id is not None:
        stmt = stmt.where(Customer.owner_id == owner_id)
    return [(customer, _view(v)) for v, customer in session.exec(stmt)]
