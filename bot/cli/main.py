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
    admin,
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
from crm.config import get_settings
from crm.services.errors import CRMError

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="crmbot: a CRM that lives in Slack and the support inbox.",
)


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


# ---------------------------------------------------------------- the commands

# Each module adds its own group or commands, in the order `crmbot --help` lists them.
admin.register(app)  # crmbot version, db ..., demo, run
interactions.register(app)  # crmbot log, timeline
customers.register(app)
deals.register(app)
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
