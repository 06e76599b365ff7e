"""a partial index of live purchases (id, customer, time)

The next-product step of a refresh reads every live purchase; with this index it reads the
purchases alone instead of scanning every interaction.

Revision ID: 0054
Revises: 0053
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0054"
down_revision: str | None = "0053"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_PURCHASES = "channel = 'purchase' AND deleted_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_interactions_purchases",
        "interactions",
        ["id", "customer_id", "occurred_at"],
        sqlite_where=sa.text(LIVE_PURCHASES),
        postgresql_where=sa.text(LIVE_PURCHASES),
    )


def downgrade() -> None:
    op.drop_index("ix_interactions_purchases", table_name="interactions")
