"""``crmbot mail ...`` and ``crmbot ingest``: look at a message, poll the inbox, import files."""

from __future__ import annotations

import re
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

# Control characters (but tab and newline) in mail text would drive the terminal: shown as �.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _shown(value: Any) -> str:
    """Mail content as safe, literal terminal text."""
    return _CONTROL_RE.sub("\ufffd", str(value))


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
    if parsed.quarantine_reason in ("empty message", "not an email (no message headers)"):
        what = "stdin" if str(file) == "-" else repr(str(file))
        raise CRMError(f"{what} is not an email message: {parsed.quarantine_reason}.")
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
        ("auto reply", f"yes: {data['auto_reason']}" if data["auto_reply"] else "no"),
        ("list mail", data["list_mail"] or "no"),
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
        common.console.print(Text.assemble((f"{label:>16}", "bold"), "  ", _shown(value)))
    for label, key in (
        ("new text", "new_text"),
        ("signature", "signature"),
        ("quoted text", "quoted_text"),
    ):
        if data[key]:
            common.console.rule(label)
            common.console.print(_shown(data[key]), highlight=False, markup=False)
    if data["problems"]:
        common.console.rule("problems")
        for problem in data["problems"]:
            common.console.print(f"- {_shown(problem)}", highlight=False, markup=False)
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


def _error_state(s: Any) -> tuple[str | None, Any]:
    """('failing' | 'recovered' | None, when it recovered) for a mailbox's sync state."""
    if not s.last_error:
        return None, None
    if s.last_success_at and (s.last_error_at is None or s.last_success_at > s.last_error_at):
        return "recovered", s.last_success_at
    return "failing", None


@mail_app.command("status")
def mail_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Health of each mailbox: last successful sync, counts, the last error and whether it
    recovered since."""
    state = common.state(ctx)
    with state.db.session() as session:
        rows: list[dict[str, Any]] = []
        for s in capture.mailbox_states(session):
            lease = leases.current_holder(session, f"mailbox:{s.mailbox}"[:300])
            error_state, recovered_at = _error_state(s)
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
                    "ignored": s.ignored_count,
                    "consecutive_failures": s.consecutive_failures,
                    "last_error": s.last_error,
                    "last_error_at": s.last_error_at,
                    "error_state": error_state,
                    "recovered_at": recovered_at,
                    "polled_by": lease.holder if lease else None,
                }
            )
        open_quarantine = capture.count_quarantine(session)
        ignored = capture.count_quarantine(session, outcome=capture.CaptureOutcome.ignored)
    if json_out:
        common.emit_json(
            {"mailboxes": rows, "open_quarantine": open_quarantine, "ignored": ignored}
        )
        return
    if not rows:
        common.console.print("No mailbox has been polled yet.")
    else:
        tz = state.settings.tz

        common.table(
            "Mailboxes",
            ["mailbox", "last sync", "stored", "dup", "quar.", "ign.", "failures", "health",
             "polled by"],
            [
                [
                    r["mailbox"],
                    common.when(r["last_success_at"], tz),
                    r["stored"],
                    r["duplicate"],
                    r["quarantined"],
                    r["ignored"],
                    r["consecutive_failures"],
                    r["error_state"] or "ok",
                    r["polled_by"],
                ]
                for r in rows
            ],
        )
        for r in rows:
            if r["error_state"] is None:
                continue
            last = f"{common.when(r['last_error_at'], tz)}: {_shown(r['last_error'])}"
            line = (
                f"{r['mailbox']}: recovered at {common.when(r['recovered_at'], tz)}; "
                f"the last error was at {last}"
                if r["error_state"] == "recovered"
                else f"{r['mailbox']}: failing since the last success; error at {last}"
            )
            common.console.print(line, highlight=False, markup=False, soft_wrap=True)
    common.console.print(
        f"{plural(open_quarantine, 'message')} in quarantine (crmbot mail quarantine), "
        f"{ignored} ignored (crmbot mail ignored).",
        highlight=False,
    )


LimitOpt = Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Show them all.")]


def _set_aside(
    ctx: typer.Context, outcome: capture.CaptureOutcome, limit: int, all_: bool, json_out: bool
) -> None:
    state = common.state(ctx)
    with state.db.session() as session:
        total = capture.count_quarantine(session, outcome=outcome)
        items = capture.list_quarantine(session, outcome=outcome, limit=None if all_ else limit)
        rows = [
            {
                "id": q.id,
                "origin": q.origin or q.source,
                "subject": q.subject,
                "sender": q.sender,
                "sent_at": q.sent_at,
                "message_id": q.external_id,
                "reason": q.reason,
                "size": len(q.raw or b""),
                "received_at": q.received_at,
            }
            for q in items
        ]
    if json_out:
        common.emit_json({"total": total, "shown": len(rows), "messages": rows})
        return
    what = "in quarantine" if outcome == capture.CaptureOutcome.quarantined else "ignored"
    if not rows:
        common.console.print(f"No message is {what}.")
        return
    tz = state.settings.tz
    for r in rows:
        # One block per message, not a table: paths and reasons stay whole at any width.
        for line in (
            f"#{r['id']}  {common.when(r['sent_at'] or r['received_at'], tz)}  "
            f"{_shown(r['sender'] or '(no sender)')}  {_shown(r['subject'] or '(no subject)')}",
            f"    where: {_shown(r['origin'])}",
            f"    why:   {_shown(r['reason'])}",
        ):
            common.console.print(line, highlight=False, markup=False, soft_wrap=True)
    more = "" if len(rows) == total else " (--limit N or --all for more)"
    common.console.print(f"Showing {len(rows)} of {total} {what}{more}.", highlight=False)


@mail_app.command("quarantine")
def mail_quarantine(
    ctx: typer.Context, limit: LimitOpt = 50, all_: AllOpt = False, json_out: JsonOpt = False
) -> None:
    """Mail that could not be stored, newest first: where it was found, date, sender, subject
    and the reason (the raw message is kept)."""
    _set_aside(ctx, capture.CaptureOutcome.quarantined, limit, all_, json_out)


@mail_app.command("ignored")
def mail_ignored(
    ctx: typer.Context, limit: LimitOpt = 50, all_: AllOpt = False, json_out: JsonOpt = False
) -> None:
    """Mail set aside on purpose, newest first, with the reason: automatic replies and
    delivery reports, list and role mail from no known contact, unknown senders under the
    ignore policy, staff mail with no customer in it (the raw message is kept)."""
    _set_aside(ctx, capture.CaptureOutcome.ignored, limit, all_, json_out)


def ingest(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="An .eml file, a folder of them, an mbox or a Maildir.")
    ],
    source: Annotated[
        str | None,
        typer.Option(
            help="Name recorded as where the mail came from (default: ingest:<folder or file "
            "name>). Mail already stored, from any file or mailbox, is skipped either way."
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
