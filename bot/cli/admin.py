"""``crmbot version``, ``crmbot db upgrade|current``, ``crmbot demo`` and ``crmbot run``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bot.cli import common
from bot.cli.common import JsonOpt
from bot.rendering import plural
from crm import __version__
from crm.services.errors import CRMError

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")


# ---------------------------------------------------------------- version, db


def version(json_out: JsonOpt = False) -> None:
    """Print the crmbot version."""
    if json_out:
        common.emit_json({"version": __version__})
    else:
        sys.stdout.write(f"crmbot {__version__}\n")  # plain: Rich would double the start-up


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = "heads", json_out: JsonOpt = False) -> None:
    """Apply the schema migrations (run automatically by other commands)."""
    from crm.db import Database, current_revision

    state = common.state(ctx)
    db = Database(state.settings.database_url)
    db.upgrade(revision)
    now_at = current_revision(db.engine)
    if json_out:
        common.emit_json({"database": now_at})
    else:
        common.console.print(f"Database is at revision {now_at}.")


@db_app.command("current")
def db_current(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Show the schema revision of the database and of this crmbot."""
    from crm.db import Database, current_revision, head_revision

    db = Database(common.state(ctx).settings.database_url)
    database, shipped = current_revision(db.engine), head_revision()
    if json_out:
        common.emit_json({"database": database, "crmbot": shipped, "current": database == shipped})
    else:
        common.console.print(f"database: {database or 'empty'}; crmbot: {shipped}")


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
    with (
        state.write() as (session, actor),
        common.progress_bar("demo data", customers, quiet=json_out) as progress,
    ):
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
            progress=lambda stage, done, total: progress(done, total=total, label=stage),
            actor=actor,
        )
    elapsed = time.perf_counter() - started
    data = summary.as_dict() | {"seconds": round(elapsed, 2)}
    if json_out:
        common.emit_json(data)
        return
    common.console.print(
        f"Demo data (seed {seed}) in {elapsed:.1f}s: {plural(summary.customers, 'customer')}, "
        f"{plural(summary.users, 'user')}, {plural(summary.deals, 'deal')} "
        f"({plural(summary.stage_changes, 'stage change')}), "
        f"{plural(summary.interactions, 'interaction')} "
        f"({plural(summary.purchases, 'purchase')}), {plural(summary.follow_ups, 'follow-up')}; "
        f"{plural(summary.quiet_customers, 'customer')} "
        f"{'has' if summary.quiet_customers == 1 else 'have'} gone quiet.",
        highlight=False,
    )
    common.console.print("Try: crmbot customer find acme", highlight=False)


# ---------------------------------------------------------------- run


def run(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Run crmbot: the Slack bot, the mail poller and the scheduled jobs that are configured."""
    from bot.mail.poller import poller_component
    from bot.runtime import Runtime
    from bot.scheduler import scheduler_factory
    from bot.slack.runtime import slack_component

    state = common.state(ctx)
    with state.db.session() as session:
        # It sends digests and stores mail for everyone: an admin's job.
        state.actor(session).require_admin("run crmbot")
    # The process's components, in start order (each import pulls in its own libraries).
    runtime = Runtime(
        state.settings, state.db, [scheduler_factory, poller_component, slack_component]
    )
    runtime.start()
    from crm import crypto

    crypto.warn_if_plain()  # personal data without encryption: said at every start
    names = [c.name for c in runtime.components]
    if json_out:
        off = [{"name": n.name, "reason": n.reason} for n in runtime.disabled]
        common.emit_json({"version": __version__, "running": names, "off": off})
    else:
        for note in runtime.disabled:
            common.err_console.print(f"{note.name} is off: {note.reason}")
        common.err_console.print(
            f"crmbot {__version__} running: {', '.join(names) or 'nothing'}. "
            "Press Ctrl+C to stop."
        )
    sys.stdout.flush()
    runtime.stop_on_signal()
    runtime.wait()


def register(app: typer.Typer) -> None:
    """Add ``crmbot version``, ``crmbot db ...``, ``crmbot demo`` and ``crmbot run``."""
    app.command()(version)
    app.add_typer(db_app, name="db")
    app.command()(demo)
    app.command()(run)
