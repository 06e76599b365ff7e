"""mail set aside: ignored mail is recorded beside quarantined mail, with where it came from

Quarantined messages gain the outcome (quarantined or ignored), the origin (file, mbox or
Maildir entry, folder and UID), subject, sender and date, and an index on the Message-ID key
so that one message is one record whichever source it came from. Mailbox sync state counts
ignored mail.

Revision ID: 0009
Revises: 0012
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quarantined_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outcome", sa.String(length=16), nullable=False, server_default="quarantined")
        )
        batch_op.add_column(sa.Column("origin", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("subject", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("sender", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_quarantined_messages_external_id", ["external_id"])
        batch_op.create_index("ix_quarantined_messages_outcome", ["outcome", "resolved_at"])
    with op.batch_alter_table("quarantined_messages", schema=None) as batch_op:
        batch_op.alter_column("outcome", server_default=None)
    with op.batch_alter_table("mailbox_states", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ignored_count", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("mailbox_states", schema=None) as batch_op:
        batch_op.alter_column("ignored_count", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("mailbox_states", schema=None) as batch_op:
        batch_op.drop_column("ignored_count")
    with op.batch_alter_table("quarantined_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantined_messages_outcome")
        batch_op.drop_index("ix_quarantined_messages_external_id")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("sender")
        batch_op.drop_column("subject")
        batch_op.drop_column("origin")
        batch_op.drop_column("outcome")
