"""``crmbot retention status|apply``: how long data is kept, what is due, and applying it now."""

from __future__ import annotations

import typer

from bot.cli import common
from bot.cli.common import JsonOpt
from crm.services import retention as retention_svc

retention_app = typer.Typer(no_args_is_help=True, help="Retention of raw mail and interactions.")


@retention_app.command("status")
def retention_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The retention settings, what is due now, and what was removed when."""
    state = common.state(ctx)
    settings = state.settings
    with state.db.session() as session:
        tz = state.viewer_zone(session)
        report = retention_svc.status(
            session,
            raw_mail_days=settings.retention_raw_mail_days,
            interactions_days=settings.retention_interactions_days,
            analytics_days=settings.retention_analytics_days,
        )
    if json_out:
        common.emit_json(report)
        return

    def days(value: int | None) -> str:
        return f"{value} days" if value else "kept (no limit set)"

    out = common.console
    out.print(f"raw mail: {days(report.raw_mail_days)}", highlight=False)
    out.print(f"interactions: {days(report.interactions_days)}", highlight=False)
    out.print(
        f"analytics results per customer: {days(report.analytics_days)} (newest two runs kept)",
        highlight=False,
    )
    out.print(f"nightly at: {settings.retention_cron} ({settings.timezone})", highlight=False)
    if report.due:
        due = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in report.due.items())
        out.print(f"due now: {due}", highlight=False)
    if report.last_runs:
        common.table(
            "Removed",
            [
                "when", "by", "raw mail stripped", "quarantine deleted", "interactions deleted",
                "analytics rows deleted",
            ],
            [
                [
                    common.when(r["at"], tz),
                    r["actor"],
                    r.get("raw_mail_stripped", 0),
                    r.get("quarantine_deleted", 0),
                    r.get("interactions_deleted", 0),
                    r.get("analytics_rows_deleted", 0),
                ]
                for r in report.last_runs
            ],
        )
    else:
        out.print("nothing removed yet")


@retention_app.command("apply")
def retention_apply(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Apply retention now, in batches (admins); the nightly job does the same."""
    state = common.state(ctx)
    settings = state.settings
    totals = retention_svc.RetentionBatch()
    while True:
        with state.write() as (session, actor):
            done = retention_svc.apply_batch(
                session,
                actor=actor,
                raw_mail_days=settings.retention_raw_mail_days,
                interactions_days=settings.retention_interactions_days,
                analytics_days=settings.retention_analytics_days,
            )
        totals.analytics_runs_pruned += done.analytics_runs_pruned
        totals.analytics_rows_deleted += done.analytics_rows_deleted
        totals.raw_mail_stripped += done.raw_mail_stripped
        totals.quarantine_deleted += done.quarantine_deleted
        totals.interactions_deleted += done.interactions_deleted
        if not done.total:
            break
    if json_out:
        common.emit_json(totals)
        return
    common.console.print(
        f"Retention applied: {totals.raw_mail_stripped:,} emails lost their raw parts, "
        f"{totals.quarantine_deleted:,} quarantined messages and "
        f"{totals.interactions_deleted:,} interactions deleted; "
        f"{totals.analytics_rows_deleted:,} per-customer results of "
        f"{totals.analytics_runs_pruned:,} old analytics runs deleted."
    )


def register(app: typer.Typer) -> None:
    """Add ``crmbot retention ...`` to the root command."""
    app.add_typer(retention_app, name="retention")
