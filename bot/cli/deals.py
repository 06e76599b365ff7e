"""``crmbot deal add|move|won|lost|list``: deals and their stages."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bot.cli import common
from bot.cli.common import AllOpt, JsonOpt, LimitOpt
from crm.models import DealCreate
from crm.services import customers as customer_svc
from crm.services import deals as deal_svc
from crm.services.errors import CRMError

deal_app = typer.Typer(no_args_is_help=True, help="Deals.")


def _deal_row(deal: Any) -> list[Any]:
    return [
        deal.id,
        deal.customer_id,
        deal.title,
        deal.stage,
        f"{deal.amount:,.2f} {deal.currency}",
        deal.expected_close_date,
    ]


@deal_app.command("add")
def deal_add(
    ctx: typer.Context,
    customer: str,
    title: str,
    amount: Annotated[str, typer.Option(help="e.g. 12000 or 12.5k")] = "0",
    currency: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option(help="Defaults to the first stage.")] = None,
    owner: Annotated[
        str | None,
        typer.Option(help="User (email, Slack id or #id); default: the customer's owner or you."),
    ] = None,
    close: Annotated[str | None, typer.Option(help="Expected close date, YYYY-MM-DD.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Open a deal for a customer."""
    from crm.services.normalise import parse_money

    state = common.state(ctx)
    close_date = common.parse_date(close)
    with state.write() as (session, actor):
        found = customer_svc.resolve_customer(session, customer)
        deal = deal_svc.open_deal(
            session,
            actor=actor,
            settings=state.settings,
            deal_in=DealCreate(
                customer_id=found.id,
                title=title,
                amount=parse_money(amount),
                currency=currency,
                stage=stage,  # type: ignore[arg-type]
                owner_id=common.user_id(session, owner),
                expected_close_date=close_date,
            ),
        )
        data = common.plain(deal)
    if warning := deal_svc.close_date_warning(close_date, state.settings):
        common.err_console.print(f"warning: {warning}")
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(f"Opened deal #{data['id']} {data['title']} ({data['stage']}).")


def _deal_change(ctx: typer.Context, json_out: bool, verb: str, fn: Any, **kwargs: Any) -> None:
    state = common.state(ctx)
    with state.write() as (session, actor):
        deal = fn(session, actor=actor, settings=state.settings, **kwargs)
        data = common.plain(deal)
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(f"Deal #{data['id']} {data['title']}: {verb} {data['stage']}.")


@deal_app.command("move")
def deal_move(
    ctx: typer.Context,
    deal_id: int,
    stage: str,
    reopen: Annotated[
        bool, typer.Option("--reopen", help="Move a won or lost deal back to an open stage.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Move a deal to another stage (a won or lost deal only with --reopen)."""
    _deal_change(
        ctx, json_out, "now", deal_svc.move_deal, deal_id=deal_id, stage=stage, reopen=reopen
    )


@deal_app.command("won")
def deal_won(ctx: typer.Context, deal_id: int, json_out: JsonOpt = False) -> None:
    """Mark a deal won."""
    _deal_change(ctx, json_out, "now", deal_svc.win_deal, deal_id=deal_id)


@deal_app.command("lost")
def deal_lost(
    ctx: typer.Context,
    deal_id: int,
    reason: Annotated[list[str], typer.Argument(help="Why it was lost.")],
    json_out: JsonOpt = False,
) -> None:
    """Mark a deal lost, with the reason."""
    _deal_change(ctx, json_out, "now", deal_svc.lose_deal, deal_id=deal_id, reason=" ".join(reason))


@deal_app.command("list")
def deal_list(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str, typer.Option(help="open, won, lost or all.")] = "open",
    customer: Annotated[str | None, typer.Option()] = None,
    limit: LimitOpt = 50,
    show_all: AllOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """List deals (open ones by default), the soonest expected to close first."""
    from crm.models import DealStatus

    state = common.state(ctx)
    if status not in ("open", "won", "lost", "all"):
        raise CRMError(f"{status!r} is not a deal status.", hint="Use open, won, lost or all.")
    if stage and stage not in state.settings.stage_names:
        raise CRMError(
            f"{stage!r} is not a deal stage.",
            hint="Stages: " + ", ".join(state.settings.stage_names) + ".",
        )
    with state.db.session() as session:
        filters = {
            "owner_id": common.user_id(session, owner),
            "stage": stage,
            "customer_id": customer_svc.resolve_customer(session, customer).id
            if customer
            else None,
            "status": None if status == "all" else DealStatus(status),
        }
        deals = deal_svc.list_deals(session, **filters, limit=common.limit_of(limit, show_all))
        total = deal_svc.count_deals(session, **filters) if not show_all else len(deals)
    if json_out:
        common.emit_json(deals)
        return
    common.table(
        "Deals",
        ["#", "customer", "title", "stage", "amount", "close"],
        [_deal_row(d) for d in deals],
    )
    if cut := common.shown_of(len(deals), total, "deal"):
        common.console.print(cut)


def register(app: typer.Typer) -> None:
    """Add ``crmbot deal ...`` to the root command."""
    app.add_typer(deal_app, name="deal")
