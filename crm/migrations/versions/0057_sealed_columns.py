"""encryption at rest: contact points are looked up by a keyed hash, sealed columns are text,
and interactions say whether they still hold raw mail

Sealed (encrypted) values are longer than the plain ones and JSON is sealed as a whole, so
every sealed column becomes TEXT on PostgreSQL (SQLite does not enforce lengths or JSON; its
columns stay as they are). Contact points get ``digest``, an HMAC of kind and value under the
index key, which replaces the value in the unique constraint. Values stay as they are here:
``crmbot keys rotate`` encrypts them in batches while crmbot runs.

Revision ID: 0057
Revises: 0056
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel import Session

revision: str = "0057"
down_revision: str | None = "0056"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> sealed columns that were not TEXT before (PostgreSQL: changed to TEXT).
_TO_TEXT = {
    "interactions": ("subject", "author", "meta"),
    "campaign_members": ("email",),
    "surveys": ("email",),
    "customers": ("street", "city", "postcode"),
    "contact_points": ("value",),
    "follow_ups": ("note",),
    "quarantined_messages": ("subject", "sender"),
    "audit_events": ("before", "after"),
    "customer_merges": ("kept_before", "merged_before"),
    "store_keys": ("value",),
}
_RAW_MAIL_MARKS = (
    "quoted_text",
    "signature",
    "forward_note",
    "attachments",
    "recipient",
    "forwarded_from",
    "references",
)
_BATCH = 5_000


def _backfill_digests(connection: sa.Connection) -> None:
    from crm.services.keys import index_key, keyed_digest

    points = sa.table(
        "contact_points",
        sa.column("id"),
        sa.column("kind"),
        sa.column("value"),
        sa.column("digest"),
    )
    with Session(bind=connection) as session:
        key = index_key(session)
    after = 0
    while True:
        rows = connection.execute(
            sa.select(points.c.id, points.c.kind, points.c.value)
            .where(points.c.id > after)
            .order_by(points.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            sa.update(points)
            .where(points.c.id == sa.bindparam("k"))
            .values(digest=sa.bindparam("d")),
            [{"k": r.id, "d": keyed_digest(key, r.kind, r.value)} for r in rows],
        )
        after = rows[-1].id


def _opt_outs_by_digest(connection: sa.Connection) -> None:
    """Campaign opt-outs keep the address's keyed hash instead of the address."""
    from crm.services.keys import index_key, keyed_digest

    table = sa.table("campaign_opt_outs", sa.column("email"), sa.column("created_at"))
    rows = connection.execute(sa.select(table.c.email, table.c.created_at)).all()
    with Session(bind=connection) as session:
        key = index_key(session)
    connection.execute(table.delete())
    with op.batch_alter_table("campaign_opt_outs") as batch_op:
        batch_op.alter_column(
            "email", new_column_name="digest", existing_type=sa.String(320),
            type_=sa.String(64), existing_nullable=False,
        )
    digests = {keyed_digest(key, "email", r.email): r.created_at for r in rows}
    if digests:
        connection.execute(
            sa.table("campaign_opt_outs", sa.column("digest"), sa.column("created_at")).insert(),
            [{"digest": d, "created_at": at} for d, at in digests.items()],
        )


def upgrade() -> None:
    connection = op.get_bind()
    postgres = connection.dialect.name == "postgresql"
    # First the types: the store's own key may be written sealed below.
    if postgres:
        for table, columns in _TO_TEXT.items():
            for name in columns:
                op.execute(
                    f'ALTER TABLE "{table}" ALTER COLUMN "{name}" TYPE TEXT USING "{name}"::text'
                )
    with op.batch_alter_table("contact_points") as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
    _backfill_digests(connection)
    with op.batch_alter_table("contact_points") as batch_op:
        batch_op.alter_column("digest", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_contact_points_kind_value", type_="unique")
        batch_op.create_unique_constraint("uq_contact_points_kind_digest", ["kind", "digest"])

    _opt_outs_by_digest(connection)

    # (A plain ADD COLUMN: a batch would rebuild the table on SQLite.)
    op.add_column(
        "interactions",
        sa.Column("holds_raw_mail", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    meta = sa.cast(sa.column("meta"), sa.Text)
    connection.execute(
        sa.table(
            "interactions", sa.column("holds_raw_mail"), sa.column("channel"), sa.column("meta")
        )
        .update()
        .where(
            sa.column("channel") == "email",
            sa.or_(*(meta.like(f'%"{mark}"%') for mark in _RAW_MAIL_MARKS)),
        )
        .values(holds_raw_mail=True)
    )


def downgrade() -> None:
    connection = op.get_bind()
    sealed = connection.execute(
        sa.text("SELECT count(*) FROM contact_points WHERE value LIKE 'enc1:%'")
    ).scalar_one()
    if sealed:
        raise RuntimeError(
            "contact points are encrypted: this older schema cannot hold them (restore a backup "
            "made before the upgrade instead)"
        )
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        lengths = {
            ("interactions", "subject"): 500, ("interactions", "author"): 320,
            ("campaign_members", "email"): 320, ("surveys", "email"): 320,
            ("customers", "street"): 300,
            ("customers", "city"): 120,
            ("customers", "postcode"): 20,
            ("contact_points", "value"): 320,
            ("follow_ups", "note"): 2000,
            ("quarantined_messages", "subject"): 500,
            ("quarantined_messages", "sender"): 320,
            ("store_keys", "value"): 128,
        }
        for table, columns in _TO_TEXT.items():
            for name in columns:
                kind = f"VARCHAR({lengths[(table, name)]})" if (table, name) in lengths else "JSON"
                op.execute(
                    f'ALTER TABLE "{table}" ALTER COLUMN "{name}" TYPE {kind} USING "{name}"::{kind}'
                )
    op.execute("DELETE FROM campaign_opt_outs")  # hashes cannot be turned back into addresses
    with op.batch_alter_table("campaign_opt_outs") as batch_op:
        batch_op.alter_column(
            "digest", new_column_name="email", existing_type=sa.String(64),
            type_=sa.String(320), existing_nullable=False,
        )
    with op.batch_alter_table("interactions") as batch_op:
        batch_op.drop_column("holds_raw_mail")
    with op.batch_alter_table("contact_points") as batch_op:
        batch_op.drop_constraint("uq_contact_points_kind_digest", type_="unique")
        batch_op.create_unique_constraint("uq_contact_points_kind_value", ["kind", "value"])
        batch_op.drop_column("digest")
