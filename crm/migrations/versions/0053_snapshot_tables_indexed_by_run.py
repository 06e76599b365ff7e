"""analytics snapshot tables indexed by (run, customer) only

The second index, by (customer, run), took keys out of order on every insert and doubled the
time to store a run's rows; erasure and export name the runs instead.

Revision ID: 0053
Revises: 0052
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0053"
down_revision: str | None = "0052"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "customer_segments": "ix_customer_segments_customer",
    "churn_scores": "ix_churn_scores_customer",
    "customer_values": "ix_customer_values_customer",
}


def upgrade() -> None:
    for table, index in INDEXES.items():
        op.drop_index(index, table_name=table)


def downgrade() -> None:
    for table, index in INDEXES.items():
        op.create_index(index, table, ["customer_id", "run_id"])
