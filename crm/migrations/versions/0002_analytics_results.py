"""analytics results

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "analytics_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cutoff", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("meta", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("analytics_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analytics_runs_kind_finished", ["kind", "finished_at"], unique=False
        )

    op.create_table(
        "churn_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("risk_level", sa.String(length=16), nullable=False),
        sa.Column("value_at_stake", sa.Float(), nullable=True),
        sa.Column("reasons", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["analytics_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "customer_id", name="uq_churn_scores_run_customer"),
    )
    with op.batch_alter_table("churn_scores", schema=None) as batch_op:
        batch_op.create_index("ix_churn_scores_customer", ["customer_id", "run_id"], unique=False)
        batch_op.create_index(
            "ix_churn_scores_run_probability", ["run_id", "probability"], unique=False
        )

    op.create_table(
        "customer_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("recency_score", sa.Integer(), nullable=False),
        sa.Column("frequency_score", sa.Integer(), nullable=False),
        sa.Column("monetary_score", sa.Integer(), nullable=False),
        sa.Column("rfm_segment", sa.String(length=40), nullable=False),
        sa.Column("cluster", sa.Integer(), nullable=True),
        sa.Column("cluster_name", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["analytics_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "customer_id", name="uq_customer_segments_run_customer"),
    )
    with op.batch_alter_table("customer_segments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_segments_customer", ["customer_id", "run_id"], unique=False
        )
        batch_op.create_index(
            "ix_customer_segments_run_segment", ["run_id", "rfm_segment"], unique=False
        )

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("follow_up_id", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["follow_up_id"], ["follow_ups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["run_id"], ["analytics_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index("ix_findings_customer", ["customer_id"], unique=False)
        batch_op.create_index("ix_findings_run_owner", ["run_id", "owner_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_run_owner")
        batch_op.drop_index("ix_findings_customer")

    op.drop_table("findings")
    with op.batch_alter_table("customer_segments", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_segments_run_segment")
        batch_op.drop_index("ix_customer_segments_customer")

    op.drop_table("customer_segments")
    with op.batch_alter_table("churn_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_churn_scores_run_probability")
        batch_op.drop_index("ix_churn_scores_customer")

    op.drop_table("churn_scores")
    with op.batch_alter_table("analytics_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_runs_kind_finished")

    op.drop_table("analytics_runs")
