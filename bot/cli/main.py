"""The ``crmbot`` command line: the same verbs as Slack, for scripts and operations.

Human output by default, ``--json`` for scripts. A mistake the user can fix prints one line
on stderr and exits with status 2; nothing is written.

A command module is imported only when one of its commands runs (or ``--help`` lists them):
each pulls in the libraries it needs, and ``crmbot version`` needs none of them.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from bot.cli import common
from crm.services.errors import CRMError

# Each command module and the top-level names its ``register(app)`` adds, in the order
# `crmbot --help` lists them (tests/bot/cli/test_main.py holds this table to the modules).
COMMANDS: dict[str, tuple[str, ...]] = {
    "bot.cli.admin": ("version", "db", "demo", "run"),
    "bot.cli.interactions": ("log", "timeline"),
    "bot.cli.customers": ("customer",),
    "bot.cli.deals": ("deal",),
    "bot.cli.followups": ("followup",),
    "bot.cli.imports": ("import",),
    "bot.cli.users": ("user",),
    "bot.cli.audit": ("audit",),
    "bot.cli.backups": ("backup", "restore"),
    "bot.cli.retention": ("retention",),
    "bot.cli.keys": ("keys",),
    "bot.cli.digests": ("digest",),
    "bot.cli.campaigns": ("campaign",),
    "bot.cli.mail": ("mail", "ingest"),
    "bot.cli.slack": ("slack",),
    "bot.cli.analytics": ("analytics",),
}
_MODULE_OF = {name: module for module, names in COMMANDS.items() for name in names}


class LazyCommands(TyperGroup):
    """The root group: it imports a command module when one of its commands is asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(_MODULE_OF)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in _MODULE_OF:
            self._load(_MODULE_OF[cmd_name])
        return self.commands.get(cmd_name)

    def _load(self, module_name: str) -> None:
        holder = typer.Typer(pretty_exceptions_enable=False)
        importlib.import_module(module_name).register(holder)
        for name, command in typer.main.get_group(holder).commands.items():
            self.add_command(command, name)


app = typer.Typer(
    cls=LazyCommands,
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
    # The settings are read when a command first needs them (`crmbot version` never does).
    overrides: dict[str, Any] = {"database_url": database_url} if database_url else {}
    state = common.State(overrides=overrides, acting_as=acting_as, verbose=verbose)
    ctx.obj = state
    ctx.call_on_close(state.close)


# ---------------------------------------------------------------- entry point


def _say(message: str) -> None:
    common.err_console.print(message, soft_wrap=True)


def _library_error(exc: Exception) -> tuple[str, int] | None:
    """The one line for an error from pydantic or SQLAlchemy, and the exit status. Those
    libraries are looked for only among the loaded modules: an error cannot come from a
    library that was never imported."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        kind = "configuration" if exc.title == "Settings" else "input"
        return f"error: {kind}: {where}: {first.get('msg')}", 2
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.OperationalError):
        return f"error: database: {str(exc.orig).strip().splitlines()[0]}", 1
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError):
        # A constraint or value the services did not foresee: say so, with no traceback.
        first_line = str(exc.orig).strip().splitlines()[0]
        return f"error: the database refused the change, nothing was written: {first_line}", 1
    return None


def _usage_error(exc: Any) -> str:
    """Click's usage error as one line, with where to read the right form."""
    message = " ".join(exc.format_message().split()).rstrip(".") + "."
    where = f" See `{exc.ctx.command_path} --help`." if exc.ctx is not None else ""
    return f"error: {message}{where}"


# Click's exceptions, from wherever this Typer keeps its Click (its own copy, or the package).
_click_errors = sys.modules[typer.BadParameter.__module__]
ClickException = _click_errors.ClickException
UsageError = _click_errors.UsageError
NoArgsIsHelpError = getattr(_click_errors, "NoArgsIsHelpError", ())
Abort = typer.Abort


def main(argv: list[str] | None = None) -> None:
    # crmbot uses no pydantic plugins; looking for them reads every installed package's
    # metadata, a good part of a short command's time. Set the variable to use one.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        code = app(args=argv, standalone_mode=False, prog_name="crmbot")
    except CRMError as exc:
        _say(f"error: {exc}")
        sys.exit(2)
    except NoArgsIsHelpError as exc:
        # `crmbot deal` alone: the group's help is the answer, as Click gives it.
        sys.stderr.write(exc.format_message() + "\n")
        sys.exit(exc.exit_code)
    except UsageError as exc:
        _say(_usage_error(exc))
        sys.exit(exc.exit_code)
    except ClickException as exc:
        _say(f"error: {' '.join(exc.format_message().split())}")
        sys.exit(exc.exit_code)
    except Abort:
        _say("error: aborted.")
        sys.exit(1)
    except Exception as exc:
        described = _library_error(exc)
        if described is None:
            raise
        _say(described[0])
        sys.exit(described[1])
    if isinstance(code, int) and code:
        sys.exit(code)
