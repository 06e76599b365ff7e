"""ids are never reused; deals get an external id

On SQLite a table without AUTOINCREMENT hands the highest id out again once its row is gone
(a customer merged away), so old audit rows would point at a new record. The tables whose ids
the audit trail and people quote are rebuilt with AUTOINCREMENT (batch mode copies them; the
rows keep their ids). PostgreSQL sequences never go back, so there nothing changes.

Deals get ``external_id``, the deal's id in another system, so importing the same deals file
twice finds the deals it made the first time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Parents before children: each rebuild copies rows whose references are already in place.
NEVER_REUSED = ("users", "customers", "deals", "follow_ups", "interactions")


def _sqlite() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return False
    # Rebuilding drops the old table; with foreign keys enforced, SQLite would first delete its
    # rows and cascade to the children. crm.db runs migrations with enforcement off and checks
    # every reference before it commits.
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "SQLite foreign keys must be off while tables are rebuilt: "
            "run the migrations with `crmbot db upgrade`."
        )
    return True


def _rebuild(autoincrement: bool) -> None:
    if not _sqlite():
        return
    for table in NEVER_REUSED:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _sqlite()  # refuses before the first rebuild
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint("uq_deals_external_id", ["external_id"])
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deals_external_id", type_="unique")
        batch_op.drop_column("external_id")
