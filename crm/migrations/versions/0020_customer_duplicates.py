"""customer addresses, duplicate dismissals and undoable merges

Customers gain a postal address (street, city, postcode, country). A pair someone said is
not a duplicate is remembered; each merge records what it moved so it can be undone.

Revision ID: 0020
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDRESS = (("street", 300), ("city", 120), ("postcode", 20), ("country", 80))


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        for name, length in ADDRESS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))
    op.create_table(
        "duplicate_dismissals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("low_id", sa.Integer(), nullable=False),
        sa.Column("high_id", sa.Integer(), nullable=False),
        sa.Column("dismissed_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("low_id", "high_id", name="uq_duplicate_dismissals_pair"),
    )
    op.create_table(
        "customer_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kept_id", sa.Integer(), nullable=False),
        sa.Column("merged_id", sa.Integer(), nullable=False),
        sa.Column("kept_before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("merged_before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("moved", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("merged_by", sa.String(length=200), nullable=False),
        sa.Column("merged_at", sa.DateTime(), nullable=False),
        sa.Column("undone_at", sa.DateTime(), nullable=True),
        sa.Column("undone_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_customer_merges_kept", "customer_merges", ["kept_id"])


def downgrade() -> None:
    op.drop_index("ix_customer_merges_kept", table_name="customer_merges")
    op.drop_table("customer_merges")
    op.drop_table("duplicate_dismissals")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        for name, _ in reversed(ADDRESS):
            batch_op.drop_column(name)
