"""``crmbot followup add|list|done|snooze``: follow-ups with customers."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from bot.cli import common
from bot.cli.common import AllOpt, JsonOpt, LimitOpt
from crm.services import customers as customer_svc
from crm.services import followups as followup_svc

followup_app = typer.Typer(no_args_is_help=True, help="Follow-ups.")


@followup_app.command("add")
def followup_add(
    ctx: typer.Context,
    customer: str,
    when: Annotated[str, typer.Argument(help="e.g. 'tomorrow 9am', 'in 3 days', 'next friday'.")],
    note: Annotated[list[str] | None, typer.Argument()] = None,
    owner: Annotated[str | None, typer.Option()] = None,
    deal: Annotated[int | None, typer.Option()] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="sales, or service (a done service follow-up may bring a satisfaction survey).",
        ),
    ] = "sales",
    json_out: JsonOpt = False,
) -> None:
    """Schedule a follow-up with a customer."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        found = customer_svc.resolve_customer(session, customer)
        zone = state.viewer_zone(session, actor)
        follow_up = followup_svc.create_follow_up(
            session,
            customer_id=found.id,
            when=when,
            actor=actor,  # type: ignore[arg-type]
            tz=zone,
            note=" ".join(note or []),
            owner_id=common.user_id(session, owner),
            deal_id=deal,
            kind=kind,
        )
        data = common.plain(follow_up)
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(
            f"Follow-up #{data['id']} with #{found.id} {found.name} "
            f"due {common.when(follow_up.due_at, zone)}."
        )


@followup_app.command("list")
def followup_list(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option()] = None,
    due: Annotated[bool, typer.Option("--due", help="Only those due by now.")] = False,
    limit: LimitOpt = 50,
    show_all: AllOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Open follow-ups, the soonest due first (times in your zone)."""
    from crm.models import utcnow

    state = common.state(ctx)
    with state.db.session() as session:
        filters = {
            "owner_id": common.user_id(session, owner),
            "due_before": utcnow() if due else None,
        }
        items = followup_svc.list_follow_ups(
            session, **filters, limit=common.limit_of(limit, show_all)
        )
        total = followup_svc.count_follow_ups(session, **filters) if not show_all else len(items)
        zone = state.viewer_zone(session)
    if json_out:
        common.emit_json(items)
        return
    common.table(
        "Follow-ups",
        ["#", "due", "customer", "status", "note"],
        [[f.id, common.when(f.due_at, zone), f.customer_id, f.status, f.note] for f in items],
    )
    if cut := common.shown_of(len(items), total, "follow-up"):
        common.console.print(cut)


@followup_app.command("done")
def followup_done(ctx: typer.Context, follow_up_id: int, json_out: JsonOpt = False) -> None:
    """Mark a follow-up done."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        data = common.plain(
            followup_svc.complete_follow_up(session, follow_up_id=follow_up_id, actor=actor)
        )
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(f"Follow-up #{follow_up_id} done.")


@followup_app.command("snooze")
def followup_snooze(
    ctx: typer.Context,
    follow_up_id: int,
    until: Annotated[
        str, typer.Argument(help="'1d', '1w', or a time such as 'next monday'.")
    ] = "1d",
    json_out: JsonOpt = False,
) -> None:
    """Push a follow-up back."""
    state = common.state(ctx)
    shortcuts = {"1d": timedelta(days=1), "1w": timedelta(weeks=1)}
    with state.write() as (session, actor):
        zone = state.viewer_zone(session, actor)
        follow_up = followup_svc.snooze_follow_up(
            session,
            follow_up_id=follow_up_id,
            actor=actor,
            until=shortcuts.get(until, until),
            tz=zone,
        )
        data = common.plain(follow_up)
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(
            f"Follow-up #{follow_up_id} snoozed until {common.when(follow_up.due_at, zone)}."
        )


def register(app: typer.Typer) -> None:
    """Add ``crmbot followup ...`` to the root command."""
    app.add_typer(followup_app, name="followup")
