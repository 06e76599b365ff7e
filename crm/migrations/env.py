"""Alembic environment: runs on the connection crm.db hands it (or CRM_DATABASE_URL)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import crm.models  # noqa: F401  (registers every table on the metadata)
from crm.db import create_db_engine, migrating
from crm.models.base import compare_column_types

target_metadata = SQLModel.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=compare_column_types,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from crm.config import get_settings

    from crm import crypto

    settings = get_settings()
    crypto.configure(settings)  # keyed hashes and sealed values as crmbot itself makes them
    engine = create_db_engine(settings.database_url)
    with migrating(engine) as conn:
        _run(conn)
