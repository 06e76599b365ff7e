"""``crmbot mail ...`` and ``crmbot ingest``: look at a message, poll the inbox, import files."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from bot.cli import common
from bot.cli.common import JsonOpt
from bot.rendering import plural
from crm.services import leases
from crm.services import mail_capture as capture
from crm.services.errors import CRMError

mail_app = typer.Typer(no_args_is_help=True, help="Mail capture: inspect, poll, status.")


@mail_app.command("inspect")
def mail_inspect(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A message file (.eml); '-' reads stdin.")],
    json_out: JsonOpt = False,
) -> None:
    """Show what the parser understands of one message (no database needed)."""
    from bot.mail.parse import parse_email

    if str(file) == "-":
        raw = sys.stdin.buffer.read()
    elif not file.is_file():
        raise CRMError(f"There is no file {str(file)!r}.")
    else:
        raw = file.read_bytes()
    settings = common.state(ctx).settings
    parsed = parse_email(
        raw,
        internal_domains=settings.internal_domains,
        max_body_chars=settings.mail_max_body_chars,
    )
    data = parsed.to_json()
    if json_out:
        common.emit_json(data)
        return

    def addr(a: dict[str, str] | None) -> str:
        if not a:
            return "-"
        return f"{a['name']} <{a['address']}>" if a["name"] else a["address"] or "-"

    lines = [
        ("from", addr(data["from"])),
        ("to", ", ".join(addr(a) for a in data["to"]) or "-"),
        ("cc", ", ".join(addr(a) for a in data["cc"]) or "-"),
        ("date", data["date"] or "-"),
        ("subject", data["subject"] or "-"),
        ("forwarded", "yes" if data["forwarded"] else "no"),
        ("original sender", addr(data["original_sender"])),
        ("forwarded by", addr(data["forwarded_by"])),
        ("message id", data["message_id"] or "-"),
        ("in reply to", data["in_reply_to"] or "-"),
        ("references", " ".join(data["references"]) or "-"),
        ("auto reply", "yes" if data["auto_reply"] else "no"),
        (
            "attachments",
            ", ".join(
                f"{a['name'] or '?'} ({a['type']}, {a['size']} B)" for a in data["attachments"]
            )
            or "-",
        ),
    ]
    for label, value in lines:
        # The value is mail content: never read as markup.
        common.console.print(Text.assemble((f"{label:>16}", "bold"), "  ", str(value)))
    for label, key in (
        ("new text", "new_text"),
        ("signature", "signature"),
        ("quoted text", "quoted_text"),
    ):
        if data[key]:
            common.console.rule(label)
            common.console.print(data[key], highlight=False, markup=False)
    if data["problems"]:
        common.console.rule("problems")
        for problem in data["problems"]:
            common.console.print(f"- {problem}", highlight=False, markup=False)
    if data["quarantine_reason"]:
        common.console.print(f"would be quarantined: {data['quarantine_reason']}", highlight=False)


@mail_app.command("poll")
def mail_poll(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One sync round, then exit.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Fetch new mail from the IMAP inbox (CRM_IMAP_*) into the CRM."""
    from bot.mail.imap_auth import check_settings
    from bot.mail.poller import MailboxPoller

    state = common.state(ctx)
    with state.db.session() as session:
        actor = state.actor(session)
    actor.require_write()
    check_settings(state.settings)
    poller = MailboxPoller(state.settings, state.db, actor=actor)
    if not once:
        common.err_console.print(
            f"Polling {poller.mailbox}; press Ctrl+C to stop.", highlight=False, markup=False
        )
        poller.start()
        try:
            while poller.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            poller.stop()  # gives the lease back so another replica can take over at once
        return
    started = time.perf_counter()
    try:
        report = poller.poll_once()
    except CRMError:
        raise
    except Exception as exc:
        raise CRMError(f"Polling {poller.mailbox} failed: {type(exc).__name__}: {exc}") from exc
    data = report.as_dict() | {"seconds": round(time.perf_counter() - started, 2)}
    if json_out:
        common.emit_json(data)
    elif report.skipped_reason:
        common.console.print(f"Skipped {poller.mailbox}: {report.skipped_reason}.", highlight=False)
    else:
        s = report.summary
        common.console.print(
            f"{poller.mailbox}: {report.fetched} fetched, {s.stored} stored, "
            f"{s.duplicate} duplicate, {s.quarantined} quarantined, {s.ignored} ignored.",
            highlight=False,
        )
    if report.skipped_reason:
        raise typer.Exit(3)


@mail_app.command("status")
def mail_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Health of each mailbox: last successful sync, counts, the last error."""
    state = common.state(ctx)
    with state.db.session() as session:
        rows: list[dict[str, Any]] = []
        for s in capture.mailbox_states(session):
            lease = leases.current_holder(session, f"mailbox:{s.mailbox}"[:300])
            rows.append(
                {
                    "mailbox": s.mailbox,
                    "uid_validity": s.uid_validity,
                    "last_uid": s.last_uid,
                    "flagged_uid": s.flagged_uid,
                    "last_success_at": s.last_success_at,
                    "last_attempt_at": s.last_attempt_at,
                    "stored": s.stored_count,
                    "duplicate": s.duplicate_count,
                    "quarantined": s.quarantined_count,
                    "consecutive_failures": s.consecutive_failures,
                    "last_error": s.last_error,
                    "last_error_at": s.last_error_at,
                    "polled_by": lease.holder if lease else None,
                }
            )
        open_quarantine = len(capture.list_quarantine(session, limit=10_000))
    if json_out:
        common.emit_json({"mailboxes": rows, "open_quarantine": open_quarantine})
        return
    if not rows:
        common.console.print("No mailbox has been polled yet.")
    else:
        tz = state.settings.tz
        common.table(
            "Mailboxes",
            [
                "mailbox",
                "last sync",
                "stored",
                "dup",
                "quar.",
                "failures",
                "last error",
                "polled by",
            ],
            [
                [
                    r["mailbox"],
                    common.when(r["last_success_at"], tz),
                    r["stored"],
                    r["duplicate"],
                    r["quarantined"],
                    r["consecutive_failures"],
                    (r["last_error"] or "")[:80],
                    r["polled_by"],
                ]
                for r in rows
            ],
        )
    common.console.print(f"{plural(open_quarantine, 'message')} in quarantine.", highlight=False)


@mail_app.command("quarantine")
def mail_quarantine(ctx: typer.Context, limit: int = 50, json_out: JsonOpt = False) -> None:
    """Messages that could not be stored, newest first, with the reason (raw bytes are kept)."""
    state = common.state(ctx)
    with state.db.session() as session:
        items = capture.list_quarantine(session, limit=limit)
        rows = [
            {
                "id": q.id,
                "source": q.source,
                "external_id": q.external_id,
                "reason": q.reason,
                "size": len(q.raw or b""),
                "received_at": q.received_at,
            }
            for q in items
        ]
    if json_out:
        common.emit_json(rows)
        return
    common.table(
        "Quarantine",
        ["#", "source", "message", "reason", "size"],
        [[r["id"], r["source"], str(r["external_id"])[:60], r["reason"], r["size"]] for r in rows],
    )


def ingest(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="An .eml file, a folder of them, an mbox or a Maildir.")
    ],
    source: Annotated[
        str | None,
        typer.Option(
            help="Name of the source (default: ingest:<folder or file name>); the same name "
            "again skips mail already stored. Use imap:<mailbox> to merge with a polled inbox."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=5_000)] = 200,
    json_out: JsonOpt = False,
) -> None:
    """Import mail from files: stored / duplicate / quarantined counts at the end."""
    from bot.mail.ingest import count_messages, describe_path, ingest_path

    state = common.state(ctx)
    with state.db.session() as session:
        actor = state.actor(session)
    actor.require_write()
    kind = describe_path(path)
    total = count_messages(path)
    started = time.perf_counter()
    with common.progress_bar(f"ingesting {kind}", total, quiet=json_out) as done:
        report = ingest_path(
            path,
            settings=state.settings,
            db=state.db,
            source=source,
            actor=actor,
            batch_size=batch_size,
            progress=done,
        )
    seconds = time.perf_counter() - started
    data = report.as_dict() | {"kind": kind, "seconds": round(seconds, 2)}
    if json_out:
        common.emit_json(data)
        return
    s = report.summary
    common.console.print(
        f"Ingested {plural(s.total, 'message')} from {path.name} ({kind}, source "
        f"{report.source}) in {seconds:.1f}s: {s.stored} stored, {s.duplicate} duplicate, "
        f"{s.quarantined} quarantined, "
        f"{s.ignored} ignored.",
        highlight=False,
    )
    for reason, n in sorted(report.quarantine_reasons.items(), key=lambda kv: -kv[1])[:10]:
        common.console.print(f"  quarantined {n}x: {reason}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``crmbot mail ...`` and ``crmbot ingest`` to the root command."""
    app.add_typer(mail_app, name="mail")
    app.command("ingest")(ingest)
