"""``crmbot import customers|deals|products|transactions``: CSV files into the CRM."""

from __future__ import annotations

from pathlib import Path

import typer

from bot.cli import common
from bot.cli.common import JsonOpt
from bot.rendering import plural
from crm.services import importer
from crm.services.errors import CRMError

import_app = typer.Typer(no_args_is_help=True, help="Import CSV files.")


def _first_line_not_utf8(path: Path) -> int:
    """The number of the first line that is not UTF-8 (read again only when decoding failed)."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _run_import(ctx: typer.Context, path: Path, kind: str, json_out: bool) -> None:
    state = common.state(ctx)
    if not path.is_file():
        raise CRMError(f"There is no file {str(path)!r}.")
    try:
        with path.open("rb") as raw:
            total = max(0, sum(1 for _ in raw) - 1)
    except OSError as exc:  # e.g. no permission to read it
        raise CRMError(f"Cannot read {str(path)!r}: {exc.strerror or exc}.") from None
    with (
        path.open(newline="", encoding="utf-8-sig", errors="strict") as file,
        common.progress_bar(f"importing {kind}", total, quiet=json_out) as progress,
    ):
        try:
            with state.write() as (session, actor):
                if kind == "customers":
                    result = importer.import_customers(
                        session, file, actor=actor, progress=progress
                    )
                elif kind == "products":
                    result = importer.import_products(session, file, actor=actor, progress=progress)
                elif kind == "deals":
                    result = importer.import_deals(
                        session, file, actor=actor, settings=state.settings, progress=progress
                    )
                else:
                    result = importer.import_transactions(
                        session, file, actor=actor, settings=state.settings, progress=progress
                    )
        except UnicodeDecodeError:
            raise CRMError(
                f"Line {_first_line_not_utf8(path)}: {path.name} is not UTF-8 text.",
                hint="Save the CSV as UTF-8 and try again.",
            ) from None
    if json_out:
        common.emit_json(result.as_dict())
    else:
        extra = (
            f", {plural(result.customers_created, 'new customer')}"
            if kind == "transactions"
            else ""
        )
        if result.attached:
            extra += (
                f", {plural(result.attached, 'row')} attached to the customer already holding "
                "its phone under a like name"
            )
        common.console.print(
            f"Imported {kind} from {path.name}: {plural(result.rows, 'row')}, "
            f"{result.created:,} added, {result.skipped:,} already there{extra}."
        )


@import_app.command("customers")
def import_customers(ctx: typer.Context, file: Path, json_out: JsonOpt = False) -> None:
    """Import customers (columns: name, email, company, phone, domain, status, owner, tags, customer_id)."""  # noqa: E501 (a line break would show in the help)
    _run_import(ctx, file, "customers", json_out)


@import_app.command("deals")
def import_deals(ctx: typer.Context, file: Path, json_out: JsonOpt = False) -> None:
    """Import deals (columns: customer (email or customer id), title, amount, currency, stage, owner, close_date)."""  # noqa: E501 (a line break would show in the help)
    _run_import(ctx, file, "deals", json_out)


@import_app.command("products")
def import_products(ctx: typer.Context, file: Path, json_out: JsonOpt = False) -> None:
    """Import the product catalogue (columns: sku or product, name, category)."""
    _run_import(ctx, file, "products", json_out)


@import_app.command("transactions")
def import_transactions(ctx: typer.Context, file: Path, json_out: JsonOpt = False) -> None:
    """Import purchases (columns: customer_id, date, amount; optional email, name, currency, product, product_name, category, quantity)."""  # noqa: E501 (a line break would show in the help)
    _run_import(ctx, file, "transactions", json_out)


def register(app: typer.Typer) -> None:
    """Add ``crmbot import ...`` to the root command."""
    app.add_typer(import_app, name="import")
