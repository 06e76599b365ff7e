"""one history: the mail capture (0003) and digest opt-out (0006) branches join here

Both branches grew from 0002, so a database had two heads. This revision changes no table; from
here on the history is one line and ``crmbot db current`` shows one revision.

Revision ID: 0007
Revises: 0003, 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | Sequence[str] | None = ("0003", "0006")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
