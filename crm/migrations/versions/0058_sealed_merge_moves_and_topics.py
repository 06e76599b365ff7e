"""what a merge moved and each customer's topic words are sealed

A merge's record of what moved holds the kept customer's address as it was after the merge, and
a customer's topic counts and keywords are the words of their own conversations: both are
encrypted now, as the merge's other snapshots and the conversations themselves are. Sealed
values are text (PostgreSQL: the JSON columns become TEXT; SQLite does not enforce JSON, so its
columns stay as they are). Values stay as they are here: ``crmbot keys rotate`` encrypts them.

Revision ID: 0058
Revises: 0057
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0058"
down_revision: str | None = "0057"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("customer_merges", "moved"),
    ("customer_topics", "counts"),
    ("customer_topics", "keywords"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name in _COLUMNS:
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{name}" TYPE TEXT USING "{name}"::text')


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    for table, name in _COLUMNS:
        sealed = connection.exec_driver_sql(
            f'SELECT count(*) FROM "{table}" WHERE "{name}" LIKE \'enc1:%%\''
        ).scalar_one()
        if sealed:
            raise RuntimeError(
                f"{table}.{name} holds encrypted values: this older schema cannot hold them "
                "(restore a backup made before the upgrade instead)"
            )
    for table, name in _COLUMNS:
        op.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{name}" TYPE JSON USING "{name}"::json')
