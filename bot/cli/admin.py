"""``crmbot version``, ``crmbot db upgrade|current``, ``crmbot demo`` and ``crmbot run``."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli import common
from bot.cli.common import JsonOpt
from crm import __version__
from crm.db import Database
from crm.services.errors import CRMError

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")


# ---------------------------------------------------------------- version, db


def version() -> None:
    """Print the crmbot version."""
    common.console.print(f"crmbot {__version__}")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = "heads") -> None:
    """Apply the schema migrations (run automatically by other commands)."""
    from crm.db import current_revision

    state = common.state(ctx)
    db = Database(state.settings.database_url)
    db.upgrade(revision)
    common.console.print(f"Database is at revision {current_revision(db.engine)}.")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and of this crmbot."""
    from crm.db import current_revision, head_revision

    db = Database(common.state(ctx).settings.database_url)
    common.console.print(
        f"database: {current_revision(db.engine) or 'empty'}; crmbot: {head_revision()}"
    )


# ---------------------------------------------------------------- demo


def demo(
    ctx: typer.Context,
    customers: Annotated[
        int, typer.Option(min=1, max=5_000_000, help="How many customers.")
    ] = 1_000,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 42,
    interactions: Annotated[
        float, typer.Option(min=0, help="Interactions per customer on average.")
    ] = 10.0,
    json_out: JsonOpt = False,
) -> None:
    """Fill the database with a realistic demo data set (about 18 months of history)."""
    import time

    from crm.demo import demo_exists, generate_demo

    state = common.state(ctx)
    started = time.perf_counter()
    with state.write() as (session, _actor):
        exists = demo_exists(session, seed)
        if exists:
            raise CRMError(
                f"The demo data for seed {seed} is in this database already.",
                hint="Use another --seed or another database (CRM_DATABASE_URL).",
            )
        summary = generate_demo(
            session,
            settings=state.settings,
            customers=customers,
            seed=seed,
            interactions_per_customer=interactions,
        )
    elapsed = time.perf_counter() - started
    data = summary.as_dict() | {"seconds": round(elapsed, 2)}
    if json_out:
        common.emit_json(data)
        return
    common.console.print(
        f"Demo data (seed {seed}) in {elapsed:.1f}s: {summary.customers:,} customers, "
        f"{summary.users} users, {summary.deals:,} deals ({summary.stage_changes:,} stage "
        f"changes), {summary.interactions:,} interactions ({summary.purchases:,} purchases), "
        f"{summary.follow_ups:,} follow-ups; {summary.quiet_customers:,} customers have gone "
        "quiet.",
        highlight=False,
    )
    common.console.print("Try: crmbot customer find acme", highlight=False)


# ---------------------------------------------------------------- run


def run(ctx: typer.Context) -> None:
    """Run crmbot: the Slack bot, the mail poller and the scheduled jobs that are configured."""
    from bot.mail.poller import poller_component
    from bot.runtime import Runtime
    from bot.scheduler import scheduler_factory
    from bot.slack.runtime import slack_component

    state = common.state(ctx)
    # The process's components, in start order (each import pulls in its own libraries).
    runtime = Runtime(
        state.settings, state.db, [scheduler_factory, poller_component, slack_component]
    )
    runtime.start()
    for note in runtime.disabled:
        common.err_console.print(
            f"{note.name} is off: {note.reason}", highlight=False, markup=False
        )
    names = ", ".join(c.name for c in runtime.components) or "nothing"
    common.err_console.print(
        f"crmbot {__version__} running: {names}. Press Ctrl+C to stop.",
        highlight=False,
        markup=False,
    )
    runtime.stop_on_signal()
    runtime.wait()


def register(app: typer.Typer) -> None:
    """Add ``crmbot version``, ``crmbot db ...``, ``crmbot demo`` and ``crmbot run``."""
    app.command()(version)
    app.add_typer(db_app, name="db")
    app.command()(demo)
    app.command()(run)
