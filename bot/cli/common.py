"""What every ``crmbot`` command shares: the consoles, ``--json``, the state and the output helpers.

The command modules import this one; it imports none of them, so there is no import circle.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, SQLModel

from crm.config import Settings
from crm.db import Database
from crm.services import users as user_svc
from crm.services.actor import Actor
from crm.services.errors import CRMError

# No markup: customer names such as "Acme [eu] Ltd" are data, printed exactly as they are.
console = Console(markup=False, highlight=False)
err_console = Console(stderr=True, markup=False, highlight=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@dataclass
class State:
    settings: Settings
    acting_as: str | None
    _db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings.database_url)
            self._db.upgrade()  # the embedded default must just work: migrate on first use
        return self._db

    def actor(self, session: Session) -> Actor:
        if self.acting_as:
            user = user_svc.find_user(session, self.acting_as)
            return user_svc.actor_for(user, "cli")
        return Actor.system("cli")

    @contextmanager
    def write(self) -> Iterator[tuple[Session, Actor]]:
        with self.db.transaction() as session:
            yield session, self.actor(session)


def state(ctx: typer.Context) -> State:
    return ctx.find_root().obj  # type: ignore[no-any-return]


# ---------------------------------------------------------------- output helpers


def plain(value: Any) -> Any:
    if isinstance(value, SQLModel):
        return {k: plain(v) for k, v in value.model_dump().items()}
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
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(plain(value), indent=2, ensure_ascii=False) + "\n")


def when(value: datetime | None, tz: Any) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else "-"


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["-" if v is None or v == "" else str(v) for v in row])
    console.print(table)


# ---------------------------------------------------------------- reading arguments


def parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CRMError(f"{value!r} is not a date.", hint="Use YYYY-MM-DD.") from None


def user_id(session: Session, ref: str | None) -> int | None:
    return user_svc.find_user(session, ref).id if ref else None


@contextmanager
def progress_bar(label: str, total: int, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr, shown on a terminal only and never with ``--json`` (``quiet``);
    yields the function to call with how many items are done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)
