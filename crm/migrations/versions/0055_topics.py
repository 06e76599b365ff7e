"""topics: customers' running term counts and keywords, term document counts, segment topics and
terms per run

Revision ID: 0055
Revises: 0054
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0055"
down_revision: str | None = "0054"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_topics",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("keywords", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "topic_terms",
        sa.Column("term", sa.String(length=200), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("term"),
    )
    op.create_table(
        "segment_topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=40), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=400), nullable=False),
        sa.Column("terms", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_segment_topics_run_segment", "segment_topics", ["run_id", "segment"])
    op.create_table(
        "segment_terms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=40), nullable=False),
        sa.Column("term", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_segment_terms_run_segment", "segment_terms", ["run_id", "segment"])


def downgrade() -> None:
    op.drop_index("ix_segment_terms_run_segment", table_name="segment_terms")
    op.drop_table("segment_terms")
    op.drop_index("ix_segment_topics_run_segment", table_name="segment_topics")
    op.drop_table("segment_topics")
    op.drop_table("topic_terms")
    op.drop_table("customer_topics")
