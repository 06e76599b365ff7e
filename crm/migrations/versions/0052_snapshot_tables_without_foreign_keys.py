"""analytics snapshot tables without foreign keys

The per-customer rows a refresh writes in bulk (segments, churn scores, values, product
suggestions) lose their foreign keys: on PostgreSQL each key is a trigger fired per row, and
they were most of the time a run took to store. Their integrity holds by construction (see
crm.models.analytics). Findings keep theirs.

Revision ID: 0052
Revises: 0051
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0052"
down_revision: str | None = "0051"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> {column: (referred table, ondelete)}
KEYS = {
    "customer_segments": {
        "run_id": ("analytics_runs", "CASCADE"),
        "customer_id": ("customers", "CASCADE"),
    },
    "churn_scores": {
        "run_id": ("analytics_runs", "CASCADE"),
        "customer_id": ("customers", "CASCADE"),
    },
    "customer_values": {
        "run_id": ("analytics_runs", "CASCADE"),
        "customer_id": ("customers", "CASCADE"),
    },
    "product_suggestions": {
        "run_id": ("analytics_runs", "CASCADE"),
        "customer_id": ("customers", "CASCADE"),
        "product_id": ("products", "CASCADE"),
    },
}
# SQLite's foreign keys have no names: batch mode names them by this convention to drop them.
CONVENTION = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _name(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table, columns in KEYS.items():
        found = [
            fk
            for fk in inspector.get_foreign_keys(table)
            if len(fk["constrained_columns"]) == 1 and fk["constrained_columns"][0] in columns
        ]
        if not found:
            continue
        if bind.dialect.name == "sqlite":
            with op.batch_alter_table(table, naming_convention=CONVENTION) as batch:
                for fk in found:
                    column = fk["constrained_columns"][0]
                    batch.drop_constraint(
                        _name(table, column, fk["referred_table"]), type_="foreignkey"
                    )
        else:
            for fk in found:
                op.drop_constraint(fk["name"], table, type_="foreignkey")


def downgrade() -> None:
    bind = op.get_bind()
    for table, columns in KEYS.items():
        if bind.dialect.name == "sqlite":
            with op.batch_alter_table(table, naming_convention=CONVENTION) as batch:
                for column, (referred, ondelete) in columns.items():
                    batch.create_foreign_key(
                        _name(table, column, referred), referred, [column], ["id"],
                        ondelete=ondelete,
                    )  # fmt: skip
        else:
            for column, (referred, ondelete) in columns.items():
                op.create_foreign_key(
                    f"{table}_{column}_fkey", table, referred, [column], ["id"], ondelete=ondelete
                )
