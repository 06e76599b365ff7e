"""``crmbot log`` and ``crmbot timeline``: a customer's interactions."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli import common
from bot.cli.common import AllOpt, JsonOpt, LimitOpt
from crm.models import Channel, Direction, InteractionCreate
from crm.services import customers as customer_svc
from crm.services import interactions as interaction_svc
from crm.services.errors import CRMError


def log_interaction(
    ctx: typer.Context,
    customer: str,
    text: Annotated[list[str], typer.Argument(help="What happened.")],
    channel: Annotated[
        str, typer.Option(help="note, call, meeting, email, slack or purchase.")
    ] = "note",
    direction: Annotated[str | None, typer.Option(help="inbound, outbound or internal.")] = None,
    deal: Annotated[int | None, typer.Option(help="Deal id.")] = None,
    amount: Annotated[str | None, typer.Option(help="For purchases.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Log a note, call, meeting or other interaction with a customer."""
    state = common.state(ctx)
    try:
        kind = Channel(channel)
    except ValueError:
        raise CRMError(
            f"{channel!r} is not a channel.",
            hint="Use note, call, meeting, email, slack or purchase.",
        ) from None
    default_direction = {Channel.note: Direction.internal, Channel.purchase: Direction.inbound}.get(
        kind, Direction.outbound
    )
    try:
        way = Direction(direction) if direction else default_direction
    except ValueError:
        raise CRMError(
            f"{direction!r} is not a direction.", hint="Use inbound, outbound or internal."
        ) from None
    body = " ".join(text).strip()
    if not body:
        raise CRMError("Nothing to log.", hint="Write what happened after the customer.")
    with state.write() as (session, actor):
        found = customer_svc.resolve_customer(session, customer)
        interaction, _ = interaction_svc.record_interaction(
            session,
            actor=actor,
            default_currency=state.settings.default_currency,
            interaction_in=InteractionCreate(
                customer_id=found.id,
                deal_id=deal,
                channel=kind,
                direction=way,
                body=body,  # type: ignore[arg-type]
                source="cli",
                amount=amount,
                subject=None,
            ),
        )  # type: ignore[arg-type]
        data = common.plain(interaction)
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(
            f"Logged {kind.value} #{data['id']} for customer #{data['customer_id']}."
        )


def timeline(
    ctx: typer.Context,
    customer: str,
    limit: LimitOpt = 20,
    show_all: AllOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """A customer's interactions, newest first (times in your zone)."""
    state = common.state(ctx)
    with state.db.session() as session:
        found = customer_svc.resolve_customer(session, customer)
        items = interaction_svc.timeline(
            session, customer_id=found.id, limit=common.limit_of(limit, show_all)
        )  # type: ignore[arg-type]
        total = (
            interaction_svc.count_interactions(session, customer_id=found.id)  # type: ignore[arg-type]
            if not show_all
            else len(items)
        )
        zone = state.viewer_zone(session)
    if json_out:
        common.emit_json(items)
        return
    common.table(
        f"Timeline of #{found.id} {found.name}",
        ["when", "channel", "direction", "subject / text"],
        [
            [common.when(i.occurred_at, zone), i.channel, i.direction, i.subject or i.body[:80]]
            for i in items
        ],
    )
    if cut := common.shown_of(len(items), total, "interaction"):
        common.console.print(cut)


def register(app: typer.Typer) -> None:
    """Add ``crmbot log`` and ``crmbot timeline`` to the root command."""
    app.command("log")(log_interaction)
    app.command("timeline")(timeline)
