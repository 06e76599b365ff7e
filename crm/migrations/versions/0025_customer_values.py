"""customer values per analytics run

Each run stores every customer's expected purchases and spend over the horizon and the
probability they are still active.

Revision ID: 0025
Revises: 0031
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("expected_purchases", sa.Float(), nullable=False),
        sa.Column("expected_spend", sa.Float(), nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=False),
        sa.Column("horizon_months", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["analytics_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "customer_id", name="uq_customer_values_run_customer"),
    )
    with op.batch_alter_table("customer_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_values_customer", ["customer_id", "run_id"], unique=False
        )
        batch_op.create_index(
            "ix_customer_values_run_spend", ["run_id", "expected_spend"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_values", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_values_run_spend")
        batch_op.drop_index("ix_customer_values_customer")
    op.drop_table("customer_values")
