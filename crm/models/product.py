"""Products and the line items of purchases: which product, how many, on which purchase."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import utc_column, utcnow


# The catalogue: one row per SKU. The category groups products for rules at category level.
class Product(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (
        sa.UniqueConstraint("sku", name="uq_products_sku"),
        sa.Index("ix_products_category", "category"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(sa_type=sa.String(200))
    name: str = Field(sa_type=sa.String(300))
    category: str | None = Field(default=None, sa_type=sa.String(200))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


# One line of a purchase interaction: a product and its quantity.
class PurchaseLine(SQLModel, table=True):
    __tablename__ = "purchase_lines"
    __table_args__ = (
        sa.Index("ix_purchase_lines_interaction", "interaction_id"),
        sa.Index("ix_purchase_lines_product", "product_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    interaction_id: int = Field(foreign_key="interactions.id", ondelete="CASCADE")
    product_id: int = Field(foreign_key="products.id", ondelete="RESTRICT")
    quantity: int = Field(default=1)


# A product a customer is likely to buy next, from one analytics run (rank 1 is the best).
class ProductSuggestion(SQLModel, table=True):
    __tablename__ = "product_suggestions"
    __table_args__ = (sa.Index("ix_product_suggestions_run_customer", "run_id", "customer_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int  # a run's snapshot: no foreign keys (see crm.models.analytics)
    customer_id: int
    product_id: int
    rank: int
    score: float
    reason: str = Field(sa_type=sa.Text)
