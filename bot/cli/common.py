"""What every ``crmbot`` command shares: the consoles, ``--json``, the state and the output helpers.

The command modules import this one; it imports none of them, so there is no import circle.
It imports nothing heavy at start-up either (the settings, the store and Rich are loaded on
first use), so that a command pays only for what it uses.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.rendering import in_zone, plural
from crm.services.errors import CRMError

if TYPE_CHECKING:
    from rich.console import Console
    from sqlmodel import Session

    from crm.config import Settings
    from crm.db import Database
    from crm.services.actor import Actor

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Show them all (no limit).")]


def __getattr__(name: str) -> Console:
    """``console`` and ``err_console``, made on first use (Rich costs start-up time)."""
    if name not in ("console", "err_console"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    # No markup: customer names such as "Acme [eu] Ltd" are data, printed exactly as they are.
    made = Console(stderr=name == "err_console", markup=False, highlight=False)
    globals()[name] = made
    return made


def _console(name: str) -> Console:
    return globals().get(name) or __getattr__(name)


@dataclass
class State:
    """The root options; the settings, the store and the acting user are made when first used."""

    overrides: dict[str, Any] = field(default_factory=dict)
    acting_as: str | None = None
    verbose: bool = False
    _db: Database | None = None

    @cached_property
    def settings(self) -> Settings:
        import logging

        from crm.config import get_settings

        settings = get_settings(**self.overrides)
        from crm import crypto

        crypto.configure(settings)
        logging.basicConfig(
            level=logging.DEBUG
            if self.verbose
            else getattr(logging, settings.log_level.upper(), logging.INFO),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        if not self.verbose:
            for noisy in ("alembic", "apscheduler"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
        return settings

    @property
    def db(self) -> Database:
        if self._db is None:
            from crm.db import Database

            self._db = Database(self.settings.database_url)
            # The embedded default must just work: migrate on first use (a quick look at the
            # schema's revision when there is nothing to do).
            if not self._db.at_head():
                self._db.upgrade()
        return self._db

    def close(self) -> None:
        """Close the store's connections (when the command ends, however it ends)."""
        if self._db is not None:
            self._db.dispose()
            self._db = None

    def actor(self, session: Session) -> Actor:
        from crm.services import users as user_svc
        from crm.services.actor import Actor

        if self.acting_as:
            user = user_svc.find_user(session, self.acting_as)
            return user_svc.actor_for(user, "cli")
        return Actor.system("cli")

    def viewer_zone(self, session: Session, actor: Actor | None = None) -> str:
        """The zone times are shown in: the acting user's own, else the team's."""
        from crm.models import User

        actor = actor or self.actor(session)
        if actor.user_id:
            user = session.get(User, actor.user_id)
            if user and user.timezone:
                return user.timezone
        return self.settings.timezone

    @contextmanager
    def write(self) -> Iterator[tuple[Session, Actor]]:
        with self.db.transaction() as session:
            yield session, self.actor(session)


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj  # type: ignore[no-any-return]


# ---------------------------------------------------------------- output helpers


def plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if callable(getattr(value, "model_dump", None)):  # a model (SQLModel, pydantic)
        return {k: plain(v) for k, v in value.model_dump().items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a service's result
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(plain(value), indent=2, ensure_ascii=False) + "\n")


def when(value: datetime | None, tz: str | tzinfo) -> str:
    """A time in the zone ``tz``, the zone named: ``2026-12-05 09:00 CET``."""
    return in_zone(value, tz, "%Y-%m-%d %H:%M") if value else "-"


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["-" if v is None or v == "" else str(v) for v in row])
    _console("console").print(table)


def limit_of(limit: int, show_all: bool) -> int | None:
    """The number of rows a list command asks for: ``None`` (all) with ``--all``."""
    return None if show_all else limit


def shown_of(shown: int, total: int, what: str) -> str | None:
    """``showing 50 of 421 deals (--limit N or --all for more)`` when a list was cut, else None."""
    if shown >= total:
        return None
    return f"showing {shown:,} of {plural(total, what)} (--limit N or --all for more)"


# ---------------------------------------------------------------- reading arguments


def parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CRMError(f"{value!r} is not a date.", hint="Use YYYY-MM-DD.") from None


def user_id(session: Session, ref: str | None) -> int | None:
    from crm.services import users as user_svc

    return user_svc.find_user(session, ref).id if ref else None


@contextmanager
def progress_bar(label: str, total: int, *, quiet: bool) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr, shown on a terminal only and never with ``--json`` (``quiet``);
    yields the function to call with how many items are done, and optionally a new ``total``
    and ``label`` (a job of several stages shows each in turn)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = _console("err_console")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)

        def update(done: int, *, total: int | None = None, label: str | None = None) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update
