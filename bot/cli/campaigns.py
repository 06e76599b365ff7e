"""``crmbot campaign create|preview|send|report|list|optout``: mailings with a control group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli import common
from bot.cli.common import JsonOpt
from crm.services.errors import CRMError

campaign_app = typer.Typer(
    no_args_is_help=True,
    help="Campaigns: mail a segment, keep a control group, measure the uplift.",
)

NameArg = Annotated[str, typer.Argument(help="The campaign's name.")]


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CRMError(
            f"Cannot read the {what} {str(path)!r}: {getattr(exc, 'strerror', None) or exc}."
        ) from None


@campaign_app.command("create")
def create(
    ctx: typer.Context,
    name: NameArg,
    template: Annotated[
        Path,
        typer.Option(
            "--template", help="Jinja2 text file; a first line 'Subject: ...' sets the subject."
        ),
    ],
    segment: Annotated[
        str | None,
        typer.Option("--segment", help="An RFM segment or cluster of the latest analytics run."),
    ] = None,
    customers: Annotated[
        Path | None,
        typer.Option("--customers", help="A file with one customer (email, #id or name) a line."),
    ] = None,
    filter_expr: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="e.g. 'status=active, tag=vip' (status, tag, domain, company, owner_id).",
        ),
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="The subject (a Jinja2 template too).")
    ] = None,
    holdout: Annotated[
        str | None, typer.Option("--holdout", help="The control group's share, e.g. 10%.")
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="How long responses count, e.g. 14d or 2w.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="uplift: keep the customers earlier campaigns say it moves most."
        ),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option("--budget", help="With --target uplift: how many customers to keep."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the control draw (default: random, stored)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a campaign: its audience split once into a treated arm and a control arm."""
    from bot.campaigns import check_template, split_template
    from crm.services import campaigns as svc
    from crm.services import customers as customer_svc

    state = common.state(ctx)
    settings = state.settings
    share = svc.parse_holdout(holdout) if holdout is not None else settings.campaign_holdout
    days = svc.parse_window(window) if window is not None else settings.campaign_window_days
    file_subject, body = split_template(_read(template, "template"))
    subject_text = subject or file_subject or ""
    if not subject_text.strip():
        raise CRMError(
            "The campaign needs a subject.",
            hint="Give --subject or start the template with 'Subject: ...'.",
        )
    check_template(subject_text, body)
    if target is not None and target != "uplift":
        raise CRMError(f"{target!r} is not a targeting.", hint="Use --target uplift --budget N.")
    if (target is None) != (budget is None):
        raise CRMError("--target uplift and --budget N go together.", hint="Give both, or neither.")
    refs = None
    if customers is not None:
        refs = [
            line.strip()
            for line in _read(customers, "customers file").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not refs:
            raise CRMError(
                f"{str(customers)!r} lists no customers.",
                hint="Write one email, #id or name a line.",
            )
    # The audience (and the model's choice) is read first; the feature reads stream through
    # their own session, not the one that writes.
    with state.db.session() as reader:
        ids = None
        if refs is not None:
            ids = [int(customer_svc.resolve_customer(reader, ref).id or 0) for ref in refs]
        audience_ids = svc.audience_ids(
            reader, segment=segment, customers=ids, filter_expr=filter_expr
        )
        model = None
        if target == "uplift":
            from crm.analytics.targeting import pick_by_uplift

            picked = pick_by_uplift(reader, audience_ids, budget=int(budget or 0))
            audience_ids, model = picked.customer_ids, picked.model
    with state.write() as (session, actor):
        audience: dict[str, Any] = (
            {"segment": segment}
            if segment is not None
            else {"customers": customers.name}
            if customers
            else {"filter": filter_expr}
        )
        if model is not None:
            audience |= {"target": "uplift", "budget": budget, "model": model}
        campaign = svc.create_campaign(
            session,
            name=name,
            customer_ids=audience_ids,
            audience=audience,
            subject=subject_text,
            template=body,
            holdout=share,
            window_days=days,
            actor=actor,
            seed=seed,
        )
        n_control = round(len(audience_ids) * share)
        out = {
            "name": campaign.name,
            "customers": len(audience_ids),
            "treatment": len(audience_ids) - n_control,
            "control": n_control,
            "holdout": share,
            "window_days": days,
            "seed": campaign.seed,
        }
    if json_out:
        common.emit_json(out)
        return
    typer.echo(
        f"Created campaign {out['name']!r}: {out['treatment']} to mail, "
        f"{out['control']} in the control group "
        f"(never contacted), responses counted for {days} days after sending."
    )


@campaign_app.command("preview")
def preview(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Who a send would mail now, and who it would skip."""
    from crm.services import campaigns as svc

    state = common.state(ctx)
    with state.db.session() as session:
        p = svc.preview(session, name)
    data = {
        "name": p.campaign.name,
        "subject": p.campaign.subject,
        "treatment": p.treatment,
        "control": p.control,
        "to_send": p.to_send,
        "sent": p.sent,
        "no_email": p.no_email,
        "opted_out": p.opted_out,
        "sample": [{"customer": r.customer_name, "email": r.email} for r in p.sample],
    }
    if json_out:
        common.emit_json(data)
        return
    typer.echo(
        f"{p.campaign.name}: {p.to_send} to send now, {p.sent} sent, {p.no_email} without email, "
        f"{p.opted_out} opted out; control group {p.control} (never contacted)."
    )
    typer.echo(f"Subject: {p.campaign.subject}")
    common.table(
        "First recipients", ["customer", "email"], [[r.customer_name, r.email] for r in p.sample]
    )


@campaign_app.command("send")
def send(
    ctx: typer.Context,
    name: NameArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say who would get it; send nothing.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Send the campaign to its treated customers (each once), under the rate limit."""
    from bot.campaigns import CampaignSender

    state = common.state(ctx)
    with state.db.session() as session:
        actor = state.actor(session)
    result = CampaignSender(state.settings, state.db).send(name, actor=actor, dry_run=dry_run)
    if json_out:
        common.emit_json(
            {
                "campaign": result.campaign,
                "dry_run": dry_run,
                "sent": result.sent,
                "skipped": [list(s) for s in result.skipped],
                "failed": [list(f) for f in result.failed],
                "sent_elsewhere": result.elsewhere,
            }
        )
        return
    verb = "would send" if dry_run else "sent"
    typer.echo(
        f"{result.campaign}: {verb} {len(result.sent)}, skipped {len(result.skipped)}, "
        f"failed {len(result.failed)}"
        + (f", {result.elsewhere} sent by another process" if result.elsewhere else "")
    )
    for who, why in result.skipped + result.failed:
        typer.echo(f"  {who}: {why}")
    if result.failed:
        raise typer.Exit(1)


@campaign_app.command("report")
def report(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Per arm: contacted, responded, rate, revenue per customer; the uplift with its 95% CI."""
    from crm.services import campaigns as svc

    state = common.state(ctx)
    with state.db.session() as session:
        r = svc.report(session, name)
    if json_out:
        common.emit_json(
            r.__dict__
            | {"arms": [a.__dict__ for a in r.arms], "uplifts": [u.__dict__ for u in r.uplifts]}
        )
        return
    print_report(r)


def print_report(r: object) -> None:
    from crm.services.campaigns import Report

    assert isinstance(r, Report)
    window = (
        f"{r.started_at:%Y-%m-%d} to {r.window_ends:%Y-%m-%d}"
        if r.started_at and r.window_ends
        else "not sent yet"
    )
    common.table(
        f"Campaign {r.name} ({r.status}; window {window})",
        ["arm", "customers", "contacted", "responded", "rate", "revenue/customer"],
        [
            [
                a.arm,
                a.customers,
                a.contacted,
                a.responded,
                f"{a.response_rate:.2%}",
                f"{a.revenue_per_customer:,.2f}",
            ]
            for a in r.arms
        ],
    )
    for u in r.uplifts:
        typer.echo(
            f"{u.arm} vs {r.control_arm}: {u.sentence} Revenue per customer {u.revenue:+,.2f} "
            f"(95% CI {u.revenue_low:,.2f} to {u.revenue_high:,.2f})."
        )


@campaign_app.command("list")
def list_(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The campaigns, newest first."""
    from crm.services import campaigns as svc

    state = common.state(ctx)
    with state.db.session() as session:
        rows = svc.list_campaigns(session)
        tz = state.viewer_zone(session)
    if json_out:
        common.emit_json([r.__dict__ for r in rows])
        return
    if not rows:
        typer.echo("No campaigns yet: create one with `crmbot campaign create`.")
        return
    common.table(
        "Campaigns",
        ["name", "status", "created", "treatment", "control", "sent"],
        [
            [r.name, r.status, common.when(r.created_at, tz), r.treatment, r.control, r.sent]
            for r in rows
        ],
    )


@campaign_app.command("optout")
def optout(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address to mail no more.")],
    json_out: JsonOpt = False,
) -> None:
    """Stop all campaign mail to an address."""
    from crm.services import campaigns as svc

    state = common.state(ctx)
    with state.write() as (session, actor):
        actor.require_write()
        changed = svc.opt_out(session, email=email, actor=actor)
    if json_out:
        common.emit_json({"email": email, "opted_out": True, "changed": changed})
        return
    typer.echo(f"{email} gets no campaign mail{'' if changed else ' (already)'}.")


def register(app: typer.Typer) -> None:
    """Add ``crmbot campaign ...`` to the root command."""
    app.add_typer(campaign_app, name="campaign")
