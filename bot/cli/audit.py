"""``crmbot audit verify|export``: check the audit trail's hash chain, and export it for review."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, time
from typing import Annotated

import typer

from bot.cli import common
from bot.cli.common import JsonOpt
from crm.services import audit as audit_svc

audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: verify and export.")


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Check every link of the audit chain; exit status 1 and the first broken link if one fails."""
    state = common.state(ctx)
    with state.db.session() as session:
        report = audit_svc.verify_chain(session)
    broken = report.broken
    if json_out:
        common.emit_json(
            {
                "ok": report.ok,
                "events": report.events,
                "scrubbed_by_erasure": report.scrubbed,
                "head": {"seq": report.head_seq, "chain": report.head_chain},
                "first_broken": None
                if broken is None
                else {"event_id": broken.event_id, "seq": broken.seq, "problem": broken.problem},
            }
        )
    elif broken is None:
        common.console.print(
            f"audit chain ok: {report.events:,} events"
            + (f" ({report.scrubbed:,} scrubbed by erasures)" if report.scrubbed else "")
            + f"; head seq {report.head_seq} {report.head_chain[:16]}"
        )
    else:
        where = (
            f"event #{broken.event_id} (seq {broken.seq})"
            if broken.event_id
            else f"seq {broken.seq}"
        )
        common.err_console.print(f"audit chain BROKEN at {where}: {broken.problem}")
    if broken is not None:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="First day to export (YYYY-MM-DD, UTC).")],
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (JSON Lines), links included.")
    ] = False,
) -> None:
    """Export the audit events since a day, in chain order (managers and admins)."""
    state = common.state(ctx)
    day = common.parse_date(since)
    assert day is not None
    start = datetime.combine(day, time(0), tzinfo=UTC)
    out = sys.stdout
    with state.db.session() as session:
        actor = state.actor(session)
        for event in audit_svc.events_since(session, actor=actor, since=start):
            if json_out:
                out.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
            else:
                what = (
                    f"{event['entity']}#{event['entity_id']}"
                    if event["entity_id"]
                    else event["entity"]
                )
                fields = (event["seq"] or "-", event["at"], event["actor"], event["action"], what)
                out.write("\t".join(str(f) for f in fields) + "\n")


def register(app: typer.Typer) -> None:
    """Add ``crmbot audit ...`` to the root command."""
    app.add_typer(audit_app, name="audit")
