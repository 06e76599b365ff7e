"""Block Kit rendering: data from the services in, Slack payloads out.

Blocks are built with slack_sdk's block models and serialised with ``to_dict()``, which
validates Slack's limits (3000-character texts, 75-character option labels...), so a
violation raises here, in tests, rather than being rejected by Slack in production.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.models.basic_objects import EMPTY_ALLOWED_TYPE_AND_PROPERTY_LIST, JsonObject
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    DatePickerElement,
    DividerBlock,
    ExternalDataSelectElement,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot import action_ids
from bot.rendering import slack_escape as esc
from bot.rendering import truncate
from crm.analytics.followups import FindingDraft
from crm.analytics.pipeline import PipelineReport
from crm.models import Customer, Deal, FollowUp, Interaction, User
from crm.services.customers import CustomerCard, CustomerMatch
from crm.services.insights import AtRisk, Insight, SegmentCount

logger = logging.getLogger(__name__)

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 3000
MAX_OPTIONS = 100
PAGE_SIZE = 10

# action and callback ids, shared with the listeners
# (the ones digests carry too come from bot.action_ids, so both always agree)
A_LOG_NOTE = action_ids.LOG_NOTE
A_NEW_DEAL = "card_new_deal"
A_FOLLOW_UP = "card_follow_up"
A_TIMELINE = "card_timeline"
A_SHOW = action_ids.OPEN_CUSTOMER
A_DONE = action_ids.FOLLOW_UP_DONE
A_SNOOZE_DAY = action_ids.FOLLOW_UP_SNOOZE_DAY
A_SNOOZE_WEEK = action_ids.FOLLOW_UP_SNOOZE_WEEK
A_MOVE_STAGE = "deal_move_stage"
A_PAGE = "page"
V_DEAL_NEW = "deal_new"
V_LOG_NOTE = "log_note"
V_FOLLOW_UP = "follow_up"
V_LOG_MESSAGE = "log_message"
OPT_CUSTOMER = "customer_options"
OPT_DEAL = "deal_options"
SHORTCUT_LOG = "log_to_crm"


# ---------------------------------------------------------------- validation


@functools.cache
def _validator_names(cls: type) -> tuple[str, ...]:
    """The ``@JsonValidator`` methods of a block model class (they are defined on the class)."""
    return tuple(
        name
        for name in dir(cls)
        if not name.startswith("__") and getattr(getattr(cls, name, None), "validator", False)
    )


def _validate_json(self: JsonObject) -> None:
    for name in _validator_names(type(self)):
        getattr(self, name)()


# slack_sdk's ``validate_json`` finds the validators again on every object of every message, by
# reading every attribute in ``dir(self)``, properties included: most of the cost of serialising a
# card. The same validators run here, found once per class; a violation raises as before.
JsonObject.validate_json = _validate_json  # type: ignore[method-assign]

_EMPTY_ALLOWED = frozenset((e["type"], e["property"]) for e in EMPTY_ALLOWED_TYPE_AND_PROPERTY_LIST)
_slack_non_null_attributes = JsonObject.get_non_null_attributes
_base_to_dict = JsonObject.to_dict


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if to_dict is None or not callable(to_dict):
        return value
    out = to_dict()
    if type(value).to_dict is _base_to_dict:
        return out  # built by _non_null_attributes below: already plain
    return {k: _plain(v) for k, v in out.items()}  # another class's to_dict: walk what it made


def _non_null_attributes(self: JsonObject) -> dict[str, Any]:
    """slack_sdk's ``get_non_null_attributes``, without its second walk of every nested dict.

    slack_sdk converts a nested object with its ``to_dict()`` and then walks the result again,
    at every level: a leaf is visited once per level above it. The output is the same.
    """
    if type(self).get_object_attribute is not JsonObject.get_object_attribute:
        return _slack_non_null_attributes(self)
    type_value = getattr(self, "type", None)
    out: dict[str, Any] = {}
    for key in sorted(self.attributes):
        value = getattr(self, key, None)
        if value is None:
            continue
        if (
            (type_value, key) not in _EMPTY_ALLOWED
            and hasattr(value, "__len__")
            and len(value) == 0
        ):
            continue
        out[key] = _plain(value)
    return out


JsonObject.get_non_null_attributes = _non_null_attributes  # type: ignore[method-assign]


# ---------------------------------------------------------------- basics


def md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate(text, MAX_TEXT))


def section(text: str, accessory: Any = None, block_id: str | None = None) -> SectionBlock:
    return SectionBlock(text=md(text), accessory=accessory, block_id=block_id)


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[md(text)])


def button(text: str, action_id: str, value: str, style: str | None = None) -> ButtonElement:
    return ButtonElement(text=truncate(text, 75), action_id=action_id, value=value, style=style)


def option(label: str, value: str) -> Option:
    return Option(label=truncate(label, 75), value=value)


def payload(
    blocks: Sequence[Block], text: str, *, limit: int = MAX_MESSAGE_BLOCKS
) -> list[dict[str, Any]]:
    if len(blocks) > limit:
        raise ValueError(f"{len(blocks)} blocks is over Slack's limit of {limit}")
    return [b.to_dict() for b in blocks]


def message(
    blocks: Sequence[Block],
    text: str,
    *,
    public: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    """A respond()/chat.postMessage payload. ``text`` is the notification fallback."""
    out: dict[str, Any] = {
        "text": truncate(text, MAX_TEXT),
        "blocks": payload(blocks, text),
        "response_type": "in_channel" if public else "ephemeral",
    }
    if replace:
        out["replace_original"] = True
    return out


def note(text: str, *, replace: bool = False) -> dict[str, Any]:
    return message([section(text)], text, replace=replace)


def warning(err: Exception) -> SectionBlock:
    """What went wrong, as one section: the start of every error reply and notice."""
    return section(f":warning: {esc(str(err))}")


def error_message(err: Exception, usage: str | None = None) -> dict[str, Any]:
    blocks: list[Block] = [warning(err)]
    if usage:
        blocks.append(context(f"Usage: `{esc(usage)}`"))
    return message(blocks, str(err))


def when(value: datetime | None, tz: str) -> str:
    if value is None:
        return "never"
    try:
        zone = ZoneInfo(tz)
    except Exception:  # a bad zone in the user table must not break rendering
        zone = ZoneInfo("UTC")
    local = value.astimezone(zone)
    return local.strftime("%a %d %b %Y %H:%M")


def _one_line(text: str | None, limit: int) -> str:
    return truncate(" ".join((text or "").split()), limit)


def money(amount: Decimal | None, currency: str | None) -> str:
    if amount is None:
        return ""
    return f"{amount:,.2f} {currency or ''}".strip()


def page_button(verb: str, args: str, offset: int) -> ButtonElement:
    value = json.dumps({"verb": verb, "args": args, "offset": offset})
    if len(value) > 2000:
        value = json.dumps({"verb": verb, "args": args[:1500], "offset": offset})
    return button("Next page", A_PAGE, value)


def _pager(
    blocks: list[Block], verb: str, args: str, offset: int, has_more: bool, shown: int
) -> None:
    if has_more:
        blocks.append(context(f"Showing {offset + 1}–{offset + shown}."))
        blocks.append(ActionsBlock(elements=[page_button(verb, args, offset + shown)]))
    elif offset:
        blocks.append(context(f"Showing {offset + 1}–{offset + shown} (the end)."))


def customer_label(customer: Customer) -> str:
    company = (
        f" ({customer.company})" if customer.company and customer.company != customer.name else ""
    )
    return f"#{customer.id} {customer.name}{company}"


def customer_option(customer: Customer) -> Option:
    return option(customer_label(customer), str(customer.id))


def deal_option(deal: Deal) -> Option:
    return option(f"#{deal.id} {deal.title} ({deal.stage})", str(deal.id))


# ---------------------------------------------------------------- help


def help_message(verbs: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    lines = [
        f"`/crm {esc(usage)}` {esc(what)}\n    e.g. `/crm {esc(example)}`"
        for usage, what, example in verbs
    ]
    blocks: list[Block] = [HeaderBlock(text="crmbot: /crm verbs")]
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > MAX_TEXT - 100:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    blocks.append(
        context("Message shortcut *Log to CRM* stores any message; the Home tab shows your day.")
    )
    return message(blocks, "crmbot: /crm verbs")


# ---------------------------------------------------------------- customers


def customer_matches(
    matches: Sequence[CustomerMatch], query: str, *, offset: int, has_more: bool
) -> dict[str, Any]:
    if not matches:
        return note(
            f"No customer matches *{esc(query)}*. Try part of the name, an email or a domain."
        )
    blocks: list[Block] = [section(f"Customers matching *{esc(query)}*:")]
    for m in matches:
        c = m.customer
        line = f"*{esc(customer_label(c))}*  ·  {esc(c.status)}"
        if c.domain:
            line += f"  ·  {esc(c.domain)}"
        blocks.append(section(line, accessory=button("Show", A_SHOW, str(c.id))))
    _pager(blocks, "find", query, offset, has_more, len(matches))
    return message(blocks, f"{len(matches)} customer(s) match {query}")


def customer_card(
    card: CustomerCard, insight: Insight | None, *, tz: str, scored: bool
) -> dict[str, Any]:
    c = card.customer
    blocks: list[Block] = [HeaderBlock(text=truncate(f"{c.name}", 150))]
    facts = [
        f"*Status:* {esc(c.status)}",
        f"*Owner:* {esc(card.owner.name) if card.owner else 'nobody'}",
    ]
    if c.company:
        facts.append(f"*Company:* {esc(c.company)}")
    if c.domain:
        facts.append(f"*Domain:* {esc(c.domain)}")
    contacts = ", ".join(esc(p.value) for p in card.contacts[:10]) or "none"
    facts.append(f"*Contacts:* {contacts}")
    facts.append(f"*Last touch:* {when(card.last_touch_at, tz)}")
    blocks.append(section("\n".join(facts)))
    if insight is not None:
        risk = (
            f"{insight.risk_level} ({insight.churn_probability:.0%})"
            if insight.churn_probability is not None
            else "not scored"
        )
        text = f"*Segment:* {esc(insight.segment or 'none')}  ·  *Churn risk:* {esc(risk)}"
        if insight.reasons:
            text += "\n" + "\n".join(f"• {esc(r)}" for r in insight.reasons[:3])
        blocks.append(section(text))
    else:
        blocks.append(
            context(
                "Segment and churn risk: not scored yet."
                if not scored
                else "Segment and churn risk: this customer was not in the latest scoring run."
            )
        )
    if card.open_deals:
        lines = [
            f"#{d.id} *{esc(d.title)}* · {esc(d.stage)} · {money(d.amount, d.currency)}"
            for d in card.open_deals[:10]
        ]
        more = len(card.open_deals) - 10
        blocks.append(
            section(
                "*Open deals*\n" + "\n".join(lines) + (f"\n…and {more} more" if more > 0 else "")
            )
        )
    else:
        blocks.append(context("No open deals."))
    if card.recent_interactions:
        lines = [
            f"{when(i.occurred_at, tz)} · {esc(i.channel)} · "
            f"{esc(_one_line(i.subject or i.preview, 120))}"
            for i in card.recent_interactions[:5]
        ]
        blocks.append(section("*Last interactions*\n" + "\n".join(lines)))
    if card.next_follow_up:
        f = card.next_follow_up
        blocks.append(section(f"*Next follow-up:* {when(f.due_at, tz)} {esc(f.note)}"))
    cid = str(c.id)
    blocks.append(
        ActionsBlock(
            block_id=f"card:{cid}",
            elements=[
                button("Log note", A_LOG_NOTE, cid),
                button("New deal", A_NEW_DEAL, cid),
                button("Follow up", A_FOLLOW_UP, cid),
                button("Open timeline", A_TIMELINE, cid),
            ],
        )
    )
    return message(blocks, f"Customer {c.name}")


def timeline(
    customer: Customer, items: Sequence[Interaction], *, tz: str, offset: int, has_more: bool
) -> dict[str, Any]:
    blocks: list[Block] = [section(f"*Timeline of {esc(customer_label(customer))}*")]
    if not items:
        blocks.append(context("Nothing recorded yet."))
    for i in items:
        head = f"{when(i.occurred_at, tz)} · {esc(i.channel)} · {esc(i.direction)}"
        if i.author:
            head += f" · {esc(i.author)}"
        body = esc(truncate((i.subject + ": " if i.subject else "") + (i.body or ""), 600))
        link = (i.meta or {}).get("permalink")
        if link:
            body += f" <{esc(link)}|link>"
        blocks.append(section(f"{head}\n{body}"))
    _pager(blocks, "timeline", f"#{customer.id}", offset, has_more, len(items))
    return message(blocks, f"Timeline of {customer.name}")


def changed(text: str) -> dict[str, Any]:
    return note(f":white_check_mark: {text}")


def not_logged(err: Exception) -> dict[str, Any]:
    """A "Log to CRM" that failed after its form closed; nothing was stored."""
    return note(f":warning: Nothing was logged to the CRM: {esc(str(err))}")


# ---------------------------------------------------------------- deals


def deal_line(deal: Deal, customer_name: str | None = None) -> str:
    who = f" · {esc(customer_name)}" if customer_name else ""
    close = f" · closes {deal.expected_close_date.isoformat()}" if deal.expected_close_date else ""
    value = money(deal.amount, deal.currency)
    return f"#{deal.id} *{esc(deal.title)}*{who} · {esc(deal.stage)} · {value}{close}"


def move_select(deal: Deal, stages: Sequence[str]) -> StaticSelectElement:
    return StaticSelectElement(
        placeholder="Move to…",
        action_id=A_MOVE_STAGE,
        options=[option(s, f"{deal.id}:{s}") for s in stages if s != deal.stage][:MAX_OPTIONS],
    )


def deal_list(
    deals: Sequence[Deal],
    names: dict[int, str],
    *,
    title: str,
    args: str,
    offset: int,
    has_more: bool,
    stages: Sequence[str],
) -> dict[str, Any]:
    if not deals:
        return note(f"No {esc(title)}.")
    blocks: list[Block] = [section(f"*{esc(title)}*")]
    for d in deals:
        blocks.append(
            section(deal_line(d, names.get(d.customer_id)), accessory=move_select(d, stages))
        )
    _pager(blocks, "deals", args, offset, has_more, len(deals))
    return message(blocks, title)


def deal_changed(deal: Deal, verb: str) -> dict[str, Any]:
    return changed(f"Deal {deal_line(deal)} {verb}.")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _per_currency(values: dict[str, Decimal]) -> str:
    return ", ".join(money(v, c) for c, v in sorted(values.items())) or "0"


def pipeline(report: PipelineReport, *, who: str) -> dict[str, Any]:
    blocks: list[Block] = [HeaderBlock(text=truncate(f"Pipeline: {who}", 150))]
    lines = []
    for s in report.stages:
        median = f"{s.median_days:.1f} d" if s.median_days is not None else "–"
        lines.append(
            f"*{esc(s.stage)}*: {s.count} deal(s), {_per_currency(s.value)}"
            f" · weighted {_per_currency(s.weighted)} ({s.probability:.0%})"
            f" · on to next {_pct(s.conversion_to_next)} · median {median} in stage"
        )
    blocks.append(section("\n".join(lines) or "No stages configured."))
    blocks.append(
        section(
            f"*Open:* {report.open_deals} deal(s), {_per_currency(report.open_value)}\n"
            f"*Weighted forecast:* {_per_currency(report.forecast)}\n"
            f"*Closed:* {report.won} won, {report.lost} lost · win rate {_pct(report.win_rate)}"
        )
    )
    if report.win_rates:
        rows = [
            f"{esc(r.owner_name)}: {_pct(r.win_rate)} ({r.won} won / {r.lost} lost)"
            for r in report.win_rates[:15]
        ]
        blocks.append(section("*Win rate by owner*\n" + "\n".join(rows)))
    for n in report.notes:
        blocks.append(context(esc(n)))
    return message(blocks, f"Pipeline: {who}")


# ---------------------------------------------------------------- follow-ups


def follow_up_actions(f: FollowUp) -> ActionsBlock:
    fid = str(f.id)
    return ActionsBlock(
        block_id=f"followup:{fid}",
        elements=[
            button("Mark done", A_DONE, fid, style="primary"),
            button("Snooze 1 day", A_SNOOZE_DAY, fid),
            button("Snooze 1 week", A_SNOOZE_WEEK, fid),
        ],
    )


def follow_up_line(f: FollowUp, customer_name: str | None, tz: str) -> str:
    who = esc(customer_name) if customer_name else f"customer #{f.customer_id}"
    note_text = f" · {esc(truncate(f.note, 300))}" if f.note else ""
    return f"#{f.id} *{who}* · due {when(f.due_at, tz)}{note_text}"


def follow_up_list(
    items: Sequence[FollowUp], names: dict[int, str], *, tz: str, offset: int, has_more: bool
) -> dict[str, Any]:
    if not items:
        return note("You have no open follow-ups.")
    blocks: list[Block] = [section("*Your follow-ups, due first*")]
    for f in items:
        blocks.append(section(follow_up_line(f, names.get(f.customer_id), tz)))
        blocks.append(follow_up_actions(f))
    _pager(blocks, "followups", "", offset, has_more, len(items))
    return message(blocks, "Your follow-ups")


# ---------------------------------------------------------------- insights


def at_risk(rows: Sequence[AtRisk], *, scored: bool) -> dict[str, Any]:
    if not scored:
        return note("Nothing is scored yet: churn risk appears after the first analytics run.")
    if not rows:
        return note("No customer is at risk in the latest scoring run.")
    blocks: list[Block] = [section("*Customers most at risk of churning*")]
    for r in rows:
        change = ""
        if r.previous_probability is not None:
            delta = r.score.probability - r.previous_probability
            change = f" ({'+' if delta >= 0 else ''}{delta:.0%} since last run)"
        reasons = "; ".join(esc(x) for x in (r.score.reasons or [])[:3])
        blocks.append(
            section(
                f"*{esc(customer_label(r.customer))}* · {esc(r.score.risk_level)} "
                f"{r.score.probability:.0%}{change}" + (f"\n{reasons}" if reasons else ""),
                accessory=button("Show", A_SHOW, str(r.customer.id)),
            )
        )
    return message(blocks[:MAX_MESSAGE_BLOCKS], "Customers at risk")


def segments(rows: Sequence[SegmentCount]) -> dict[str, Any]:
    if not rows:
        return note("Nothing is scored yet: segments appear after the first analytics run.")
    total = sum(r.customers for r in rows) or 1
    lines = []
    for r in rows:
        change = ""
        if r.previous is not None:
            delta = r.customers - r.previous
            change = f" ({'+' if delta >= 0 else ''}{delta} since last run)"
        lines.append(f"*{esc(r.segment)}*: {r.customers:,} ({r.customers / total:.0%}){change}")
    return message([section("*Customer segments*\n" + "\n".join(lines))], "Customer segments")


# ---------------------------------------------------------------- modals


def _customer_input(initial: Customer | None, block_id: str = "customer") -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label="Customer",
        element=ExternalDataSelectElement(
            action_id=OPT_CUSTOMER,
            placeholder="Type a name, email or domain",
            min_query_length=1,
            initial_option=customer_option(initial) if initial else None,
        ),
    )


def _text_input(
    block_id: str,
    label: str,
    *,
    multiline: bool = False,
    optional: bool = False,
    initial: str | None = None,
    placeholder: str | None = None,
) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=label,
        optional=optional,
        element=PlainTextInputElement(
            action_id="value", multiline=multiline, initial_value=initial, placeholder=placeholder
        ),
    )


def modal(
    callback_id: str,
    title: str,
    blocks: Sequence[Block],
    *,
    submit: str = "Save",
    private_metadata: str | None = None,
) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=callback_id,
        title=PlainTextObject(text=truncate(title, 24)),
        submit=PlainTextObject(text=submit),
        close=PlainTextObject(text="Cancel"),
        blocks=list(blocks),
        private_metadata=private_metadata,
    )
    return view.to_dict()


def notice_modal(title: str, err: Exception) -> dict[str, Any]:
    """A form's answer when the form cannot be handled at all (e.g. the user may no longer act)."""
    view = View(
        type="modal",
        title=PlainTextObject(text=truncate(title, 24)),
        close=PlainTextObject(text="Close"),
        blocks=[warning(err)],
    )
    return view.to_dict()


def notice_home(err: Exception) -> dict[str, Any]:
    """The App Home of a user who cannot use the CRM, saying why."""
    return {"type": "home", "blocks": payload([warning(err)], "home")}


def deal_new_modal(
    *, stages: Sequence[str], currency: str, customer: Customer | None
) -> dict[str, Any]:
    return modal(
        V_DEAL_NEW,
        "New deal",
        [
            _customer_input(customer),
            _text_input("title", "Title", placeholder="e.g. Team plan, 20 seats"),
            _text_input("amount", "Amount", optional=True, placeholder="e.g. 12000"),
            _text_input("currency", "Currency", optional=True, initial=currency),
            InputBlock(
                block_id="stage",
                label="Stage",
                element=StaticSelectElement(
                    action_id="value",
                    options=[option(s, s) for s in stages][:MAX_OPTIONS],
                    initial_option=option(stages[0], stages[0]),
                ),
            ),
            InputBlock(
                block_id="close",
                label="Expected close date",
                optional=True,
                element=DatePickerElement(action_id="value"),
            ),
        ],
        submit="Open deal",
    )


def log_note_modal(customer: Customer) -> dict[str, Any]:
    kinds = [option("Note", "note"), option("Call", "call"), option("Meeting", "meeting")]
    return modal(
        V_LOG_NOTE,
        "Log to CRM",
        [
            section(f"Log for *{esc(customer_label(customer))}*"),
            InputBlock(
                block_id="kind",
                label="Kind",
                element=StaticSelectElement(
                    action_id="value", options=kinds, initial_option=kinds[0]
                ),
            ),
            _text_input("text", "What happened", multiline=True),
        ],
        private_metadata=json.dumps({"customer_id": customer.id}),
    )


def follow_up_modal(customer: Customer) -> dict[str, Any]:
    return modal(
        V_FOLLOW_UP,
        "Follow up",
        [
            section(f"Follow up with *{esc(customer_label(customer))}*"),
            _text_input("when", "When", placeholder="tomorrow 9am, in 3 days, next friday"),
            _text_input("note", "Note", optional=True, multiline=True),
        ],
        private_metadata=json.dumps({"customer_id": customer.id}),
    )


def log_message_modal(*, meta: dict[str, Any], preview: str, in_thread: bool) -> dict[str, Any]:
    blocks: list[Block] = [
        section(f"> {esc(truncate(' '.join(preview.split()), 500)) or '(no text)'}"),
        _customer_input(None),
        InputBlock(
            block_id="deal",
            label="Deal",
            optional=True,
            element=ExternalDataSelectElement(
                action_id=OPT_DEAL,
                placeholder="Optional: a deal of this customer",
                min_query_length=0,
            ),
        ),
    ]
    if in_thread:
        blocks.append(
            InputBlock(
                block_id="thread",
                label="Thread",
                optional=True,
                element=CheckboxesElement(
                    action_id="value", options=[option("Log the whole thread", "thread")]
                ),
            )
        )
    return modal(
        V_LOG_MESSAGE, "Log to CRM", blocks, submit="Log", private_metadata=json.dumps(meta)
    )


def options(items: Sequence[Option]) -> dict[str, Any]:
    return {"options": [o.to_dict() for o in items[:MAX_OPTIONS]]}


# ---------------------------------------------------------------- App Home


def home_view(
    *,
    user: User,
    follow_ups: Sequence[FollowUp],
    follow_up_names: dict[int, str],
    deals: Sequence[Deal],
    deal_names: dict[int, str],
    rotting: Mapping[int, FindingDraft],
    at_risk_rows: Sequence[AtRisk],
    scored: bool,
    stages: Sequence[str],
) -> dict[str, Any]:
    tz = user.timezone
    blocks: list[Block] = [HeaderBlock(text=truncate(f"Hi {user.name}", 150))]
    blocks.append(section(f"*Follow-ups due* ({len(follow_ups)})"))
    if not follow_ups:
        blocks.append(context("Nothing due. :tada:"))
    for f in follow_ups[:10]:
        blocks.append(section(follow_up_line(f, follow_up_names.get(f.customer_id), tz)))
        blocks.append(follow_up_actions(f))
    blocks.append(DividerBlock())
    blocks.append(section(f"*Your open deals* ({len(rotting)} rotting)"))
    if not deals:
        blocks.append(context("No open deals."))
    for d in deals[:20]:
        line = deal_line(d, deal_names.get(d.customer_id))
        if d.id in rotting:
            line = f":warning: {line}\n_{esc(rotting[d.id].why)}_"
        blocks.append(section(line, accessory=move_select(d, stages)))
    if len(deals) > 20:
        blocks.append(context("…and more: `/crm deals mine`"))
    blocks.append(DividerBlock())
    blocks.append(section("*Your customers at risk*"))
    if not scored:
        blocks.append(
            context("Nothing is scored yet: churn risk appears after the first analytics run.")
        )
    elif not at_risk_rows:
        blocks.append(context("None of your customers is at risk."))
    for risk in at_risk_rows[:10]:
        reasons = "; ".join(esc(x) for x in (risk.score.reasons or [])[:2])
        blocks.append(
            section(
                f"*{esc(customer_label(risk.customer))}* · {esc(risk.score.risk_level)} "
                f"{risk.score.probability:.0%}" + (f"\n{reasons}" if reasons else ""),
                accessory=button("Show", A_SHOW, str(risk.customer.id)),
            )
        )
    return {"type": "home", "blocks": payload(blocks, "home", limit=MAX_VIEW_BLOCKS)}
