"""``crmbot digest``: preview, send now, subscriptions and history of the scheduled digests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli import common
from bot.cli.common import AllOpt, JsonOpt, LimitOpt
from crm.services.errors import CRMError

digest_app = typer.Typer(
    no_args_is_help=True, help="Scheduled digests: preview, send now, subscriptions."
)

KindArg = Annotated[str, typer.Argument(help="churn, followups or segments.")]


def _kind(kind: str) -> str:
    from bot.digests import KINDS

    if kind not in KINDS:
        raise CRMError(f"{kind!r} is not a digest.", hint="Digests: " + ", ".join(KINDS) + ".")
    return kind


@digest_app.command("preview")
def preview(
    ctx: typer.Context,
    kind: KindArg,
    for_user: Annotated[
        str | None,
        typer.Option(
            "--for",
            help="User (email, Slack id or #id); follow-ups need one, default: the first rep.",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, html or slack.")] = "text",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of printing."),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every item, not only the first of each section.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts: the body, and if it is empty.")
    ] = False,
) -> None:
    """Show what a digest would say now, without sending it.

    Changes are shown since the last digest of the kind sent to the user (--for), or to anyone.
    """
    from sqlmodel import col, select

    from bot import digests
    from bot.slack.blocks.digests import digest_messages
    from crm.models import Role, User, utcnow
    from crm.services import users as user_svc

    state = common.state(ctx)
    kind = _kind(kind)
    if fmt not in ("text", "html", "slack"):
        raise CRMError(f"{fmt!r} is not a format.", hint="Use text, html or slack.")
    now = utcnow()
    with state.db.session() as session:
        user = None
        last = None
        if kind != "followups":
            # Changes since the last digest this user got by email (or Slack), else anyone's.
            recipient = None
            if for_user:
                found = user_svc.find_user(session, for_user)
                recipient = (
                    f"email:{found.email}" if found.email else f"slack:{found.slack_user_id}"
                )
            last = digests.last_digest(session, kind, recipient)
        else:
            if for_user:
                user = user_svc.find_user(session, for_user)
            else:
                user = session.exec(
                    select(User).where(User.role == Role.rep).order_by(col(User.id))
                ).first()
                if user is None:
                    raise CRMError(
                        "There is no rep to preview follow-ups for.", hint="Give one with --for."
                    )
        digest = digests.build_digest(
            session, state.settings, kind, now=now, user=user, last=last, everything=everything
        )
    if fmt == "text":
        body = digests.render_text(digest)
    elif fmt == "html":
        body = digests.render_html(digest, chart_cid=None)
    else:
        body = json.dumps(digest_messages(digest), indent=2, ensure_ascii=False)
    if json_out:
        common.emit_json({"kind": kind, "format": fmt, "empty": digest.empty, "body": body})
        return
    if digest.empty:
        typer.echo("(This digest is empty now, so it would not be sent.)", err=True)
    if output:
        output.write_text(body, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(body if body.endswith("\n") else body + "\n")


@digest_app.command("send")
def send(
    ctx: typer.Context,
    kind: KindArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say who would get what; send nothing.")
    ] = False,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Only this recipient (email, Slack id or channel id)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Send a digest now to its recipients (outside the schedule)."""
    from bot.scheduler import DigestService

    state = common.state(ctx)
    kind = _kind(kind)
    with state.db.session() as session:
        actor = state.actor(session)
    service = DigestService(state.settings, state.db)
    only = (lambda r: r.address.lower() == to.lower()) if to else None
    results = service.send_now(kind, dry_run=dry_run, only=only, actor=actor)
    if json_out:
        typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
        return
    if not results and to:
        raise CRMError(
            f"{to!r} does not receive the {kind} digest.",
            hint="Run without --to to see its recipients.",
        )
    if not results:
        typer.echo(
            f"The {kind} digest has no recipients: add users with emails or Slack ids, "
            "or configure a channel."
        )
    for r in results:
        typer.echo(r.describe())
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _subscription(
    ctx: typer.Context, user: str, kind: str, channel: str, subscribed: bool, json_out: bool
) -> None:
    from crm.services import digest_runs
    from crm.services import users as user_svc

    state = common.state(ctx)
    with state.write() as (session, actor):
        target = user_svc.find_user(session, user)
        changed = digest_runs.set_subscription(
            session,
            user=target,
            kind=_kind(kind),
            channel=channel,
            subscribed=subscribed,
            actor=actor,
        )
        name, target_id = target.name, target.id
    if json_out:
        common.emit_json(
            {
                "user_id": target_id,
                "kind": kind,
                "channel": channel,
                "subscribed": subscribed,
                "changed": changed,
            }
        )
        return
    state_word = "gets" if subscribed else "no longer gets"
    typer.echo(
        f"{name} {state_word} the {kind} digest by {channel}." + ("" if changed else " (unchanged)")
    )


ChannelOpt = Annotated[str, typer.Option(help="email or slack.")]


def _subscription_command(subscribed: bool, help_text: str) -> Any:
    """``digest subscribe`` and ``digest unsubscribe``: the same command either way round."""

    def command(
        ctx: typer.Context,
        user: str,
        kind: KindArg,
        channel: ChannelOpt = "email",
        json_out: JsonOpt = False,
    ) -> None:
        _subscription(ctx, user, kind, channel, subscribed, json_out)

    command.__doc__ = help_text
    return command


digest_app.command("unsubscribe")(
    _subscription_command(False, "Stop sending a digest to a user on a channel.")
)
digest_app.command("subscribe")(_subscription_command(True, "Send a digest to a user again."))


@digest_app.command("history")
def history(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Argument()] = None,
    limit: LimitOpt = 30,
    show_all: AllOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Recent digest sends: period, recipient, status, attempts, last error."""
    from crm.services import digest_runs

    state = common.state(ctx)
    with state.db.session() as session:
        runs = digest_runs.history(session, job=kind, limit=common.limit_of(limit, show_all))
        total = digest_runs.count_history(session, job=kind) if not show_all else len(runs)
    if json_out:
        common.emit_json(runs)
        return
    common.table(
        "Digest sends",
        ["job", "period", "recipient", "status", "attempts", "error"],
        [
            [r.job, r.period, r.recipient, r.status, r.attempts, (r.last_error or "")[:80]]
            for r in runs
        ],
    )
    if cut := common.shown_of(len(runs), total, "send"):
        common.console.print(cut)


def register(app: typer.Typer) -> None:
    """Add ``crmbot digest ...`` to the root command."""
    app.add_typer(digest_app, name="digest")
