"""The ``crmbot`` command line: the same verbs as Slack, for scripts and operations.

Human output by default, ``--json`` for scripts. A mistake the user can fix prints one line
on stderr and exits with status 2; nothing is written.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.cli import (
    analytics,
    common,
    customers,
    deals,
    digests,
    followups,
    imports,
    interactions,
    mail,
    slack,
    users,
)
from bot.cli.common import JsonOpt
from crm import __version__
from crm.config import get_settings
from crm.db import Database
from crm.services.errors import CRMError

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="crmbot: a CRM that lives in Slack and the support inbox.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")

@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="CRM_DATABASE_URL",
            help="Defaults to the SQLite file ./crm.db.",
        ),
    ] = None,
    acting_as: Annotated[
        str | None,
        typer.Option(
            "--as", help="Act as this user (email, Slack id or #id); default: an admin 'cli' actor."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    overrides: dict[str, Any] = {"database_url": database_url} if database_url else {}
    settings = get_settings(**overrides)
    logging.basicConfig(
        level=logging.DEBUG
        if verbose
        else getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("alembic", "apscheduler"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = common.State(settings=settings, acting_as=acting_as)


# ---------------------------------------------------------------- version, db


@app.command()
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
    common.console.print(f"database: {current_revision(db.engine) or 'empty'}; crmbot: {head_revision()}")


# ---------------------------------------------------------------- demo


@app.command()
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
        f"Demo data (seed {seed}) in {elapsed:.1f}s: {summary.customers:,} customers, {summary.users} users, "
        f"{summary.deals:,} deals ({summary.stage_changes:,} stage changes), {summary.interactions:,} interactions "
        f"({summary.purchases:,} purchases), {summary.follow_ups:,} follow-ups; {summary.quiet_customers:,} customers have gone quiet.",
        highlight=False,
    )
    common.console.print("Try: crmbot customer find acme", highlight=False)


# ---------------------------------------------------------------- run


@app.command()
def run(ctx: typer.Context) -> None:
    """Run crmbot: the Slack bot, the mail poller and the scheduled jobs that are configured."""
    from bot.mail.poller import poller_component
    from bot.runtime import Runtime
    from bot.scheduler import scheduler_factory
    from bot.slack_runtime import slack_component

    state = common.state(ctx)
    # The process's components, in start order (each import pulls in its own libraries).
    runtime = Runtime(state.settings, state.db, [scheduler_factory, poller_component, slack_component])
    runtime.start()
    for note in runtime.disabled:
        common.err_console.print(f"{note.name} is off: {note.reason}", highlight=False, markup=False)
    names = ", ".join(c.name for c in runtime.components) or "nothing"
    common.err_console.print(
        f"crmbot {__version__} running: {names}. Press Ctrl+C to stop.",
        highlight=False,
        markup=False,
    )
    runtime.stop_on_signal()
    runtime.wait()


# ---------------------------------------------------------------- the commands

# Each module adds its own group or commands, in the order `crmbot --help` lists them.
customers.register(app)
deals.register(app)
interactions.register(app)
followups.register(app)
imports.register(app)
users.register(app)
digests.register(app)
mail.register(app)  # crmbot mail ..., crmbot ingest
slack.register(app)
analytics.register(app)


# ---------------------------------------------------------------- entry point


def _say(message: str) -> None:
    common.err_console.print(message, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    # Typer handles usage errors itself (exit 2); our own errors arrive here.
    try:
        app(args=argv)
    except CRMError as exc:
        _say(f"error: {exc}")
        sys.exit(2)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        kind = "configuration" if exc.title == "Settings" else "input"
        _say(f"error: {kind}: {where}: {first.get('msg')}")
        sys.exit(2)
    except OperationalError as exc:
        _say(f"error: database: {str(exc.orig).strip().splitlines()[0]}")
        sys.exit(1)
    except DBAPIError as exc:
        # A constraint or value the services did not foresee: say so, with no traceback.
        first_line = str(exc.orig).strip().splitlines()[0]
        _say(f"error: the database refused the change, nothing was written: {first_line}")
        sys.exit(1)
