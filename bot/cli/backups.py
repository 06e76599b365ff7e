"""``crmbot backup FILE`` and ``crmbot restore FILE``: the whole store in one file, and back."""

from __future__ import annotations

from pathlib import Path

import typer

from bot.cli import common
from bot.cli.common import JsonOpt
from bot.rendering import plural


def backup(ctx: typer.Context, file: Path, json_out: JsonOpt = False) -> None:
    """Write a consistent backup of the whole store to FILE, while crmbot runs (admins)."""
    from crm.services import backups

    state = common.state(ctx)
    with state.db.session() as session:
        actor = state.actor(session)
    manifest = backups.make_backup(state.db, file, actor=actor)
    if json_out:
        common.emit_json(backups.describe(manifest))
        return
    rows = sum(manifest.counts.values())
    common.console.print(
        f"Backed up {plural(rows, 'row')} (schema {manifest.schema_revision}) to {file}; "
        f"sha256 {manifest.data_sha256[:16]}."
    )


def restore(ctx: typer.Context, file: Path, json_out: JsonOpt = False) -> None:
    """Restore a backup into an empty database; refuses a schema newer than this crmbot."""
    from crm.db import Database
    from crm.services import backups
    from crm.services.actor import Actor

    state = common.state(ctx)
    # Not ``state.db``: that would create the schema, and the target must be empty. An empty
    # store has no users: whoever can reach it acts as its admin. `--as` is checked when the
    # target has users (and then the restore is refused anyway: the target is not empty).
    db = Database(state.settings.database_url)
    try:
        actor = Actor.system("cli")
        if state.acting_as and backups.has_users(db):
            with db.session() as session:
                actor = state.actor(session)
        manifest = backups.restore_backup(db, file, actor=actor)
    finally:
        db.dispose()
    if json_out:
        common.emit_json(backups.describe(manifest))
        return
    rows = sum(manifest.counts.values())
    common.console.print(
        f"Restored {plural(rows, 'row')} from {file} (made {manifest.created_at}, "
        f"schema {manifest.schema_revision}); every table's rows match the manifest."
    )
    if missing := backups.missing_keys(manifest):
        common.err_console.print(
            f"The data is encrypted with key {', '.join(missing)}, which CRM_ENCRYPTION_KEYS "
            "does not hold: add the keys the backup was made with before crmbot reads it.",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``crmbot backup`` and ``crmbot restore``."""
    app.command()(backup)
    app.command()(restore)
