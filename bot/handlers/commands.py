"""``/crm <verb> ...``: one slash command, many verbs; each parses, calls a service, renders."""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from sqlmodel import Session

from bot.handlers.common import Caller, bot_context, read, start, write
from bot.rendering import slack_escape as esc
from bot.slack.blocks.base import PAGE_SIZE, changed, error_message, local_time
from bot.slack.blocks.campaigns import campaign_report_message
from bot.slack.blocks.customers import (
    customer_card,
    customer_label,
    customer_matches,
    duplicate_pairs,
    merged,
    timeline_message,
)
from bot.slack.blocks.deals import deal_changed, deal_list, pipeline_message
from bot.slack.blocks.followups import follow_up_list
from bot.slack.blocks.forms import deal_new_modal, forget_modal
from bot.slack.blocks.help import help_message
from bot.slack.blocks.insights import (
    at_risk_message,
    segments_message,
    top_value_message,
    topics_message,
)
from crm.analytics import pipeline as pipeline_stats
from crm.analytics.duplicates import DEFAULT_MIN_SCORE, find_duplicates
from crm.models import (
    Channel,
    CustomerCreate,
    CustomerUpdate,
    DealStatus,
    InteractionCreate,
    Role,
)
from crm.services import campaigns as campaign_svc
from crm.services import customers as customer_svc
from crm.services import deals as deal_svc
from crm.services import erasure, insights, slack_capture
from crm.services import followups as followup_svc
from crm.services import interactions as interaction_svc
from crm.services import merges as merge_svc
from crm.services import users as user_svc
from crm.services import values as value_svc
from crm.services.dates import parse_when
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# (usage, what it does, example): the help text and the "right form" shown on a mistake.
VERBS: list[tuple[str, str, str]] = [
    ("help", "list the verbs", "help"),
    ("find <text>", "customers by email, domain or name", "find acme"),
    ("show <customer>", "a customer card", "show jane@acme.com"),
    ("add <name> <email> [company]", "add a customer", 'add "Jane Doe" jane@acme.com Acme Inc'),
    (
        "set <customer> field=value ...",
        "change a customer: name, company, domain, status, owner, tags, street, city, postcode, "
        "country, email (adds one), phone (replaces it)",
        "set #42 status=active owner=@maria",
    ),
    ("merge <keep> <merge>", "fold the second customer into the first", "merge #42 #57"),
    ("unmerge <merge id>", "undo a merge: both customers back as they were", "unmerge 7"),
    ("duplicates [min score]", "customers that look like duplicates", "duplicates 80"),
    ("deal new", "open a deal (a form)", "deal new"),
    ("deal <id> move <stage>", "move a deal to a stage", "deal 42 move proposal"),
    ("deal <id> won", "mark a deal won", "deal 42 won"),
    ("deal <id> lost <reason>", "mark a deal lost", "deal 42 lost went with a competitor"),
    (
        "deal <id> reopen <stage>",
        "move a won or lost deal back to an open stage",
        "deal 42 reopen negotiation",
    ),
    ("deals [mine|all|@user|<stage>]", "list open deals", "deals mine"),
    ("pipeline [mine|@user]", "deals per stage, conversion, forecast, win rates", "pipeline"),
    (
        "log [call|meeting] <customer>: <text>",
        "log a note, call or meeting",
        "log call acme.com: talked renewal",
    ),
    (
        "followup <customer> <when>[:] [note]",
        "remind yourself (your time zone); a colon may end the time, e.g. tomorrow 9am: send quote",
        "followup acme tomorrow 9am send quote",
    ),
    (
        'followup "<name with spaces>" <when>[:] [note]',
        "a customer name with spaces is quoted, or ends with a colon: Acme Corp: next friday: call",
        'followup "Acme Corp" next friday',
    ),
    ("followups", "your open follow-ups, due first", "followups"),
    ("timeline <customer>", "everything recorded with a customer", "timeline jane@acme.com"),
    ("at-risk [n]", "customers most at risk of churning", "at-risk 10"),
    ("top [n]", "your most valuable customers (expected 12-month spend)", "top 10"),
    ("segments", "customers per segment", "segments"),
    ("topics [segment]", "what each segment's customers talk about, and what is rising", "topics"),
    (
        "campaign report <name>",
        "a campaign's response per arm and its uplift over the control group",
        "campaign report spring-offer",
    ),
    (
        "link #channel <customer>",
        "capture a channel's messages for a customer (admins)",
        "link #acme-shared acme.com",
    ),
    ("unlink #channel", "stop capturing a channel (admins)", "unlink #acme-shared"),
    (
        "role @user <role>",
        "set a user's role: admin, manager, rep, viewer (admins)",
        "role @maria manager",
    ),
    (
        "forget <customer> [reason]",
        "erase a person's personal data on request, after a confirmation (admins)",
        "forget jane@acme.com asked by email",
    ),
]


# Verbs that only read: they run in the request's one read session (see crm_command).
READ_VERBS = frozenset(
    {
        "help",
        "find",
        "show",
        "deals",
        "pipeline",
        "followups",
        "timeline",
        "at-risk",
        "top",
        "segments",
        "topics",
        "duplicates",
        "campaign",
    }
)


def usage(verb: str) -> str | None:
    for text, _what, _example in VERBS:
        if text.split()[0] == verb:
            return " / ".join(u for u, _w, _e in VERBS if u.split()[0] == verb)
    return None


@dataclass(frozen=True)
class VerbRequest(Caller):
    """One ``/crm`` verb from the caller: what they typed, and where."""

    client: WebClient
    verb: str
    args: str
    offset: int = 0
    trigger_id: str | None = None
    channel_id: str | None = None
    # The request's read session (the acting user was looked up in it), for the read verbs.
    session: Session | None = None

    def read(self, fn: Callable[[Session], T]) -> T:
        """Run a read in the request's session if it has one, else in a new one."""
        return fn(self.session) if self.session is not None else read(self.bot, fn)


class UsageError(CRMError):
    """The command's shape is wrong; the reply shows the right form."""


# ---------------------------------------------------------------- parsing helpers

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>$")
_LABELLED = re.compile(r"^([^:\"]{1,200}):\s+(.*)$", re.DOTALL)


def split_customer(text: str) -> tuple[str, str]:
    """(customer reference, the rest): a quoted name, ``name with spaces: rest``, or one word.

    For verbs whose rest is free text (``log``); ``followup`` has its own rules (split_followup).
    """
    text = text.strip()
    if not text:
        return "", ""
    if text[0] in "\"'":
        end = text.find(text[0], 1)
        if end > 1:
            return text[1:end].strip(), text[end + 1 :].strip()
    if m := _LABELLED.match(text):
        return m.group(1).strip(), m.group(2).strip()
    head, _, rest = text.partition(" ")
    return head, rest.strip()


def slack_user_ref(token: str) -> str:
    """A user as typed: <@U123|name> (Slack's escaped mention), U123, an email or a name."""
    if m := _MENTION.match(token.strip()):
        return m.group(1)
    return token.strip()


def channel_ref(token: str) -> str:
    if m := _CHANNEL.match(token.strip()):
        return m.group(1)
    raw = token.strip()
    if raw.startswith("#"):
        raise UsageError(
            f"I could not read {raw} as a channel.",
            hint="Pick the channel from Slack's #-autocomplete so it arrives as a link.",
        )
    return raw


def _deal_id(token: str) -> int:
    value = token.lstrip("#")
    if not value.isdigit():
        raise UsageError(f"{token!r} is not a deal number.")
    return int(value)


def _customer_names(session: Session, ids: set[int]) -> dict[int, str]:
    return {cid: customer_svc.get_customer(session, cid).name for cid in ids}


# ---------------------------------------------------------------- verbs


def v_help(req: VerbRequest) -> dict[str, Any]:
    """List the verbs."""
    return help_message(VERBS)


def v_find(req: VerbRequest) -> dict[str, Any]:
    if not req.args:
        raise UsageError("What should I look for?")

    def run(session: Session) -> list[customer_svc.CustomerMatch]:
        return customer_svc.find_customers(session, req.args, limit=req.offset + PAGE_SIZE + 1)

    found = req.read(run)
    page = found[req.offset : req.offset + PAGE_SIZE]
    return customer_matches(
        page, req.args, offset=req.offset, has_more=len(found) > req.offset + len(page)
    )


def v_show(req: VerbRequest) -> dict[str, Any]:
    if not req.args:
        raise UsageError("Which customer?")

    def run(session: Session) -> dict[str, Any]:
        customer = customer_svc.resolve_customer(session, req.args)
        card = customer_svc.customer_card(session, customer.id)  # type: ignore[arg-type]
        insight, scored = insights.customer_insight_and_scored(session, customer.id)  # type: ignore[arg-type]
        upsell = insights.next_products(session, customer.id)  # type: ignore[arg-type]
        talk = insights.talks_about(session, customer.id)  # type: ignore[arg-type]
        return customer_card(
            card, insight, tz=req.tz, scored=scored, next_products=upsell, talks_about=talk
        )

    return req.read(run)


def v_add(req: VerbRequest) -> dict[str, Any]:
    try:
        tokens = shlex.split(req.args)
    except ValueError as exc:
        raise UsageError(f"I could not read that: {exc}.") from None
    at = next((i for i, t in enumerate(tokens) if "@" in t and "." in t.split("@")[-1]), None)
    if at is None or at == 0:
        raise UsageError("A new customer needs a name and an email.")
    name, email, company = " ".join(tokens[:at]), tokens[at], " ".join(tokens[at + 1 :]) or None

    def run(session: Session) -> dict[str, Any]:
        customer = customer_svc.create_customer(
            session,
            actor=req.actor,
            customer_in=CustomerCreate(name=name, email=email, company=company),
        )
        return changed(f"Added customer *{esc(customer_label(customer))}*.")

    return write(req.bot, run)


_PLAIN_FIELDS = ("name", "company", "domain", "status", "street", "city", "postcode", "country")
_SET_FIELDS = (*_PLAIN_FIELDS, "owner", "tags", "email", "phone")


def v_set(req: VerbRequest) -> dict[str, Any]:
    try:
        tokens = shlex.split(req.args)
    except ValueError as exc:
        raise UsageError(f"I could not read that: {exc}.") from None
    first = next((i for i, t in enumerate(tokens) if "=" in t), None)
    if not first:
        raise UsageError("Give the customer, then field=value pairs.")
    ref = " ".join(tokens[:first])
    pairs: dict[str, str] = {}
    for token in tokens[first:]:
        key, sep, value = token.partition("=")
        key = key.strip().lower()
        if not sep or key not in _SET_FIELDS:
            raise UsageError(
                f"{token!r} is not a field=value pair I know.",
                hint="Fields: " + ", ".join(_SET_FIELDS) + ".",
            )
        pairs[key] = value.strip()

    def run(session: Session) -> dict[str, Any]:
        customer = customer_svc.resolve_customer(session, ref)
        cid: int = customer.id  # type: ignore[assignment]
        data: dict[str, Any] = {
            k: (v or None) if k != "name" else v for k, v in pairs.items() if k in _PLAIN_FIELDS
        }
        if "owner" in pairs:
            data["owner_id"] = user_svc.find_user(session, slack_user_ref(pairs["owner"])).id
        if "tags" in pairs:
            data["tags"] = [t for t in pairs["tags"].split(",") if t.strip()]
        try:
            changes = CustomerUpdate(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise UsageError(
                f"{where}: {first.get('msg')}", hint="Status: lead, active or churned."
            ) from None
        if data:
            customer = customer_svc.update_customer(
                session, customer_id=cid, changes=changes, actor=req.actor
            )
        if "email" in pairs:  # every address is kept: mail from each finds the customer
            customer_svc.add_contact_point(
                session, customer_id=cid, kind="email", value=pairs["email"], actor=req.actor
            )
        if "phone" in pairs:  # one number to call: the new one replaces the old
            customer_svc.replace_contact_point(
                session, customer_id=cid, kind="phone", value=pairs["phone"], actor=req.actor
            )
        return changed(
            f"Updated *{esc(customer_label(customer))}*: "
            + esc(", ".join(f"{k}={v}" for k, v in pairs.items()))
        )

    return write(req.bot, run)


def v_merge(req: VerbRequest) -> dict[str, Any]:
    try:
        tokens = shlex.split(req.args)
    except ValueError as exc:
        raise UsageError(f"I could not read that: {exc}.") from None
    if len(tokens) != 2:
        raise UsageError("Give exactly two customers (quote names with spaces, or use #ids).")

    def run(session: Session) -> dict[str, Any]:
        keep = customer_svc.resolve_customer(session, tokens[0])
        gone = customer_svc.resolve_customer(session, tokens[1])
        gone_label = customer_label(gone)
        kept, record = customer_svc.merge_with_record(
            session,
            keep_id=keep.id,  # type: ignore[arg-type]
            merge_id=gone.id,  # type: ignore[arg-type]
            actor=req.actor,
        )
        return merged(
            f"Merged {esc(gone_label)} into *{esc(customer_label(kept))}* (merge #{record.id}).",
            record.id,  # type: ignore[arg-type]
        )

    return write(req.bot, run)


def v_unmerge(req: VerbRequest) -> dict[str, Any]:
    arg = req.args.strip().lstrip("#")
    if not arg.isdigit():
        raise UsageError("Give the merge's number, e.g. `unmerge 7`.")

    def run(session: Session) -> dict[str, Any]:
        merge = merge_svc.unmerge_customers(session, merge_id=int(arg), actor=req.actor)
        kept = customer_svc.get_customer(session, merge.kept_id)
        back = customer_svc.get_customer(session, merge.merged_id)
        return changed(
            f"Undid merge #{merge.id}: *{esc(customer_label(back))}* is back beside "
            f"*{esc(customer_label(kept))}*."
        )

    return write(req.bot, run)


DUPLICATES_SHOWN = 10


def v_duplicates(req: VerbRequest) -> dict[str, Any]:
    arg = req.args.strip()
    try:
        min_score = float(arg) if arg else DEFAULT_MIN_SCORE
    except ValueError:
        raise UsageError(f"{arg!r} is not a score (0-100).") from None
    if not 0 <= min_score <= 100:
        raise UsageError(f"{arg!r} is not a score (0-100).")

    def run(session: Session) -> dict[str, Any]:
        pairs = find_duplicates(session, min_score=min_score)
        shown = pairs[:DUPLICATES_SHOWN]
        names = customer_svc.customer_names(
            session, {i for p in shown for i in (p.low_id, p.high_id)}
        )
        return duplicate_pairs(shown, names, min_score=min_score, total=len(pairs))

    return req.read(run)


def v_deal(req: VerbRequest) -> dict[str, Any]:
    parts = req.args.split(None, 2)
    settings = req.bot.settings
    if not parts:
        raise UsageError("What about the deal?")
    if parts[0].lower() == "new":
        req.actor.require_write()
        if not req.trigger_id:
            raise UsageError("`deal new` opens a form, which needs Slack's trigger.")
        req.client.views_open(
            trigger_id=req.trigger_id,
            view=deal_new_modal(
                stages=settings.open_stages, currency=settings.default_currency, customer=None
            ),
        )
        return {}
    deal_id = _deal_id(parts[0])
    action = parts[1].lower() if len(parts) > 1 else ""
    rest = parts[2].strip() if len(parts) > 2 else ""
    if action == "move":
        if not rest:
            raise UsageError(
                f"Move deal #{deal_id} to which stage?",
                hint="Stages: " + ", ".join(settings.stage_names) + ".",
            )
        fn: Callable[[Session], Any] = lambda s: deal_svc.move_deal(  # noqa: E731
            s, deal_id=deal_id, stage=rest, actor=req.actor, settings=settings
        )
        verb = "moved"
    elif action == "reopen":
        if not rest:
            raise UsageError(
                f"Reopen deal #{deal_id} in which stage?",
                hint="Stages: " + ", ".join(settings.open_stages) + ".",
            )
        fn = lambda s: deal_svc.move_deal(  # noqa: E731
            s, deal_id=deal_id, stage=rest, actor=req.actor, settings=settings, reopen=True
        )
        verb = "reopened"
    elif action == "won":
        fn = lambda s: deal_svc.win_deal(s, deal_id=deal_id, actor=req.actor, settings=settings)  # noqa: E731
        verb = "won :tada:"
    elif action == "lost":
        if not rest:
            raise UsageError(f"Why was deal #{deal_id} lost?")
        fn = lambda s: deal_svc.lose_deal(  # noqa: E731
            s, deal_id=deal_id, reason=rest, actor=req.actor, settings=settings
        )
        verb = "lost"
    else:
        raise UsageError(
            f"I don't know `deal {deal_id} {action}`." if action else f"What about deal #{deal_id}?"
        )
    deal = write(req.bot, fn)
    return deal_changed(deal, verb)


def v_deals(req: VerbRequest) -> dict[str, Any]:
    arg = req.args.strip()
    settings = req.bot.settings

    def run(session: Session) -> dict[str, Any]:
        owner_id: int | None = None
        stage: str | None = None
        title = "your open deals"
        if arg in ("", "mine"):
            owner_id = req.user.id
        elif arg == "all":
            title = "all open deals"
        elif arg.lower() in settings.stage_names:
            stage = arg.lower()
            title = f"open deals in {stage}"
        else:
            owner = user_svc.find_user(session, slack_user_ref(arg))
            owner_id, title = owner.id, f"open deals of {owner.name}"
        status = None if stage in ("won", "lost") else DealStatus.open
        found = deal_svc.list_deals(
            session,
            owner_id=owner_id,
            stage=stage,
            status=status,
            limit=PAGE_SIZE + 1,
            offset=req.offset,
        )
        page = found[:PAGE_SIZE]
        names = _customer_names(session, {d.customer_id for d in page})
        return deal_list(
            page,
            names,
            title=title,
            args=arg,
            offset=req.offset,
            has_more=len(found) > len(page),
            stages=settings.stage_names,
        )

    return req.read(run)


def v_pipeline(req: VerbRequest) -> dict[str, Any]:
    arg = req.args.strip()

    def run(session: Session) -> dict[str, Any]:
        owner_id, who = None, "everyone"
        if arg == "mine":
            owner_id, who = req.user.id, req.user.name
        elif arg:
            owner = user_svc.find_user(session, slack_user_ref(arg))
            owner_id, who = owner.id, owner.name
        report = pipeline_stats.pipeline_report(
            session, settings=req.bot.settings, owner_id=owner_id
        )
        return pipeline_message(report, who=who)

    return req.read(run)


_LOG_KINDS = {"call": Channel.call, "meeting": Channel.meeting, "note": Channel.note}


def v_log(req: VerbRequest) -> dict[str, Any]:
    text = req.args
    kind = Channel.note
    head, _, rest = text.partition(" ")
    if head.lower() in _LOG_KINDS:
        kind, text = _LOG_KINDS[head.lower()], rest
    ref, body = split_customer(text)
    if not ref or not body:
        raise UsageError("Give the customer and what happened.")

    def run(session: Session) -> dict[str, Any]:
        customer = customer_svc.resolve_customer(session, ref)
        interaction_svc.record_interaction(
            session,
            actor=req.actor,
            default_currency=req.bot.settings.default_currency,
            interaction_in=InteractionCreate(
                customer_id=customer.id,  # type: ignore[arg-type]
                channel=kind,
                body=body,  # type: ignore[arg-type]
                author=req.user.email or req.user.name,
                source="slack:command",
            ),
        )
        return changed(f"Logged a {kind.value} for *{esc(customer_label(customer))}*.")

    return write(req.bot, run)


def _reads_as_time(phrase: str, tz: str) -> bool:
    try:
        parse_when(phrase, tz=tz)
    except CRMError:
        return False
    return True


def _leading_time(text: str, tz: str) -> tuple[str, str] | None:
    """The longest leading phrase (up to six words) that reads as a time, and the words after it."""
    words = text.split()
    for n in range(min(len(words), 6), 0, -1):
        phrase = " ".join(words[:n])
        if _reads_as_time(phrase, tz):
            return phrase, " ".join(words[n:])
    return None


# A colon (or "|", "--") followed by a space separates parts; "10:30" is not a separator.
_SEPARATOR = re.compile(r"^(.*?)\s*(?:[:|]|--)\s+(.*)$", re.DOTALL)


def split_when(text: str, tz: str) -> tuple[str, str]:
    """The time and the note: split at the first ``: ``, else after the longest time phrase."""
    if m := _SEPARATOR.match(text):
        return m.group(1), m.group(2)
    if found := _leading_time(text, tz):
        return found
    raise UsageError(
        f"I could not find a time in {text!r}.",
        hint="Try 'tomorrow 9am', 'in 3 days' or 'next friday'.",
    )


def split_followup(text: str, tz: str) -> tuple[str, str, str]:
    """(customer, when, note) of ``followup``, by these rules, first match wins:

    1. ``"Acme Corp" next friday call``: a quoted customer name, then the time and note.
    2. ``acme tomorrow 9am: send quote``: before the first ``: `` stand one word and a
       time, so that colon starts the note.
    3. ``Acme Corp: next friday: call``: a time follows the first ``: ``, so the words
       before it are the customer (a name with spaces).
    4. ``acme tomorrow 9am send quote``: the first word is the customer.

    The time is the longest leading phrase that reads as one (or the text up to the next
    ``: ``); the note is what follows it.
    """
    text = text.strip()
    if not text:
        return "", "", ""

    def when_and_note(rest: str) -> tuple[str, str]:
        rest = rest.strip()
        return split_when(rest, tz) if rest else ("", "")

    if text[0] in "\"'":
        end = text.find(text[0], 1)
        if end <= 1:
            raise UsageError("The customer's name has no closing quote.")
        return text[1:end].strip(), *when_and_note(text[end + 1 :])
    if m := _LABELLED.match(text):
        head, tail = m.group(1).strip(), m.group(2).strip()
        first, _, after_first = head.partition(" ")
        if after_first.strip() and _reads_as_time(after_first, tz):
            return first, after_first.strip(), tail
        time_part = m2.group(1) if (m2 := _SEPARATOR.match(tail)) else tail
        if _leading_time(time_part, tz) is not None:
            return head, *when_and_note(tail)
    first, _, rest = text.partition(" ")
    return first, *when_and_note(rest)


def v_followup(req: VerbRequest) -> dict[str, Any]:
    ref, when, note = split_followup(req.args, req.tz)
    if not ref or not when:
        raise UsageError("Give the customer and when.")

    def run(session: Session) -> dict[str, Any]:
        customer = customer_svc.resolve_customer(session, ref)
        follow_up = followup_svc.create_follow_up(
            session,
            customer_id=customer.id,  # type: ignore[arg-type]
            when=when,
            note=note,
            actor=req.actor,
            tz=req.tz,  # type: ignore[arg-type]
        )
        return changed(
            f"Follow-up #{follow_up.id} with *{esc(customer_label(customer))}* "
            f"on {local_time(follow_up.due_at, req.tz)}."
        )

    return write(req.bot, run)


def v_followups(req: VerbRequest) -> dict[str, Any]:
    def run(session: Session) -> dict[str, Any]:
        found = followup_svc.list_follow_ups(
            session, owner_id=req.user.id, limit=PAGE_SIZE + 1, offset=req.offset
        )
        page = found[:PAGE_SIZE]
        names = _customer_names(session, {f.customer_id for f in page})
        return follow_up_list(
            page, names, tz=req.tz, offset=req.offset, has_more=len(found) > len(page)
        )

    return req.read(run)


def v_timeline(req: VerbRequest) -> dict[str, Any]:
    if not req.args:
        raise UsageError("Whose timeline?")

    def run(session: Session) -> dict[str, Any]:
        customer = customer_svc.resolve_customer(session, req.args)
        items = interaction_svc.timeline(
            session,
            customer_id=customer.id,  # type: ignore[arg-type]
            limit=req.offset + PAGE_SIZE + 1,
        )
        page = items[req.offset : req.offset + PAGE_SIZE]
        return timeline_message(
            customer,
            page,
            tz=req.tz,
            offset=req.offset,
            has_more=len(items) > req.offset + len(page),
        )

    return req.read(run)


def v_at_risk(req: VerbRequest) -> dict[str, Any]:
    arg = req.args.strip()
    if arg and not arg.isdigit():
        raise UsageError(f"{arg!r} is not a number.")
    n = max(1, min(int(arg or 10), 40))

    def run(session: Session) -> dict[str, Any]:
        rows = insights.at_risk_customers(session, limit=n)
        scored = bool(rows) or insights.latest_run(session) is not None
        return at_risk_message(rows, scored=scored)

    return req.read(run)


def v_top(req: VerbRequest) -> dict[str, Any]:
    arg = req.args.strip()
    if arg and not arg.isdigit():
        raise UsageError(f"{arg!r} is not a number.")
    n = max(1, min(int(arg or 10), 40))
    # A rep sees their own customers; managers and admins the whole book.
    owner = req.actor.user_id if req.actor.role == Role.rep else None

    def run(session: Session) -> dict[str, Any]:
        rows = value_svc.most_valuable(session, limit=n, owner_id=owner)
        scored = bool(rows) or insights.latest_run(session) is not None
        return top_value_message(rows, scored=scored, own=owner is not None)

    return req.read(run)


def v_segments(req: VerbRequest) -> dict[str, Any]:
    return req.read(lambda s: segments_message(insights.segment_counts(s)))


TOPIC_DAYS = 7


def v_topics(req: VerbRequest) -> dict[str, Any]:
    segment = req.args.strip() or None

    def run(session: Session) -> dict[str, Any]:
        now = datetime.now(UTC)
        rows = insights.segment_topics(
            session, since=now - timedelta(days=TOPIC_DAYS), until=now, segment=segment
        )
        if segment is not None and not rows:
            raise UsageError(f"No topics for a segment named {segment!r}.")
        return topics_message(rows, days=TOPIC_DAYS)

    return req.read(run)


def v_campaign(req: VerbRequest) -> dict[str, Any]:
    action, _, name = req.args.strip().partition(" ")
    if action.lower() != "report" or not name.strip():
        raise UsageError("Give `report` and the campaign's name.")
    return req.read(lambda s: campaign_report_message(campaign_svc.report(s, name.strip())))


def v_link(req: VerbRequest) -> dict[str, Any]:
    channel_token, _, ref = req.args.strip().partition(" ")
    if not channel_token or not ref.strip():
        raise UsageError("Give the channel and the customer.")
    channel = channel_ref(channel_token)

    def run(session: Session) -> dict[str, Any]:
        req.actor.require_admin("link channels")
        customer = customer_svc.resolve_customer(session, ref.strip())
        slack_capture.link_channel(
            session,
            channel_id=channel,
            customer_id=customer.id,  # type: ignore[arg-type]
            actor=req.actor,
        )
        return changed(
            f"Messages in <#{channel}> are now captured for "
            f"*{esc(customer_label(customer))}*. "
            "Invite me to the channel if I am not in it."
        )

    return write(req.bot, run)


def v_unlink(req: VerbRequest) -> dict[str, Any]:
    if not req.args.strip():
        raise UsageError("Which channel?")
    channel = channel_ref(req.args.split()[0])
    write(req.bot, lambda s: slack_capture.unlink_channel(s, channel_id=channel, actor=req.actor))
    return changed(f"<#{channel}> is no longer captured.")


def v_forget(req: VerbRequest) -> dict[str, Any]:
    ref, reason = split_customer(req.args)
    if not ref:
        raise UsageError("Which customer?")
    req.actor.require_admin("erase a customer's personal data")
    if not req.trigger_id:
        raise UsageError("`forget` asks for confirmation in a form, which needs Slack's trigger.")
    customer = req.read(lambda s: erasure.resolve_exactly(s, ref))
    req.client.views_open(trigger_id=req.trigger_id, view=forget_modal(customer, reason))
    return {}


def v_role(req: VerbRequest) -> dict[str, Any]:
    parts = req.args.split()
    if len(parts) != 2:
        raise UsageError("Give the user and the role.")

    def run(session: Session) -> dict[str, Any]:
        req.actor.require_admin("change roles")
        target = user_svc.find_user(session, slack_user_ref(parts[0]))
        user = user_svc.set_role(session, user_id=target.id, role=parts[1], actor=req.actor)  # type: ignore[arg-type]
        return changed(f"{esc(user.name)} is now {esc(user.role)}.")

    return write(req.bot, run)


HANDLERS: dict[str, Callable[[VerbRequest], dict[str, Any]]] = {
    "help": v_help,
    "find": v_find,
    "show": v_show,
    "add": v_add,
    "set": v_set,
    "merge": v_merge,
    "unmerge": v_unmerge,
    "duplicates": v_duplicates,
    "deal": v_deal,
    "deals": v_deals,
    "pipeline": v_pipeline,
    "log": v_log,
    "followup": v_followup,
    "followups": v_followups,
    "timeline": v_timeline,
    "at-risk": v_at_risk,
    "top": v_top,
    "topics": v_topics,
    "segments": v_segments,
    "campaign": v_campaign,
    "link": v_link,
    "unlink": v_unlink,
    "role": v_role,
    "forget": v_forget,
}


def run_verb(req: VerbRequest) -> dict[str, Any]:
    """The reply to one verb; a user mistake becomes an ephemeral note with the right form."""
    handler = HANDLERS.get(req.verb)
    if handler is None:
        err = CRMError(f"I don't know the verb {req.verb!r}.", hint="`/crm help` lists them.")
        return error_message(err)
    try:
        return handler(req)
    except CRMError as err:
        logger.info("/crm %s by %s: %s", req.verb, req.actor.name, err)
        return error_message(err, usage(req.verb) if isinstance(err, UsageError) else None)


def parse_command(text: str) -> tuple[str, str]:
    text = (text or "").strip()
    verb, _, args = text.partition(" ")
    return (verb.lower() or "help"), args.strip()


def answer_verb(
    context: dict[str, Any],
    client: WebClient,
    slack_user_id: str,
    verb: str,
    args: str,
    *,
    offset: int = 0,
    trigger_id: str | None = None,
    channel_id: str | None = None,
) -> dict[str, Any]:
    """The reply to a verb from a Slack user: the typed command, or a page button's next page."""
    bot = bot_context(context)
    with contextlib.ExitStack() as stack:
        # A read verb runs in the session the acting user is found in: one read, not two.
        session = stack.enter_context(bot.db.lookup()) if verb in READ_VERBS else None
        refused: list[CRMError] = []
        who = start(context, client, slack_user_id, session=session, refuse=refused.append)
        if who is None:
            return error_message(refused[0])
        return run_verb(
            VerbRequest(
                bot=who.bot,
                slack_user_id=who.slack_user_id,
                user=who.user,
                actor=who.actor,
                client=client,
                verb=verb,
                args=args,
                offset=offset,
                trigger_id=trigger_id,
                channel_id=channel_id,
                session=session,
            )
        )


def crm_command(
    ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient, context: dict[str, Any]
) -> None:
    """/crm: acknowledge at once, then answer through the response URL."""
    ack()
    verb, args = parse_command(command.get("text", ""))
    reply = answer_verb(
        context,
        client,
        command["user_id"],
        verb,
        args,
        trigger_id=command.get("trigger_id"),
        channel_id=command.get("channel_id"),
    )
    if reply:
        respond(**reply)


def register(app: App) -> None:
    app.command("/crm")(crm_command)
