"""Customers: search results, the customer card with its buttons, and the timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, HeaderBlock, Option

from bot.rendering import plural, truncate
from bot.rendering import slack_escape as esc
from bot.slack import ids
from bot.slack.blocks.base import (
    button,
    context,
    local_time,
    message,
    money,
    note,
    one_line,
    option,
    pager,
    section,
)
from crm.analytics.duplicates import DuplicatePair
from crm.models import Customer, Interaction
from crm.services.customers import CustomerCard, CustomerMatch, format_address
from crm.services.insights import Insight


def customer_label(customer: Customer) -> str:
    company = (
        f" ({customer.company})" if customer.company and customer.company != customer.name else ""
    )
    return f"#{customer.id} {customer.name}{company}"


def customer_option(customer: Customer) -> Option:
    return option(customer_label(customer), str(customer.id))


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
        blocks.append(section(line, accessory=button("Show", ids.OPEN_CUSTOMER, str(c.id))))
    pager(blocks, "find", query, offset, has_more, len(matches))
    verb = "matches" if len(matches) == 1 else "match"
    return message(blocks, f"{plural(len(matches), 'customer')} {verb} {query}")


def satisfaction_line(rated: Any, tz: str) -> str:
    """The latest survey rating and its trend against the one before."""
    before = f", {rated.previous}/5 before" if rated.previous is not None else ""
    return (
        f"*Satisfaction:* {rated.latest}/5 ({rated.trend}{before}), "
        f"{local_time(rated.answered_at, tz)}"
    )


def customer_card(
    card: CustomerCard,
    insight: Insight | None,
    *,
    tz: str,
    scored: bool,
    next_products: list[str] | None = None,
    talks_about: list[str] | None = None,
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
    if address := format_address(c):
        facts.append(f"*Address:* {esc(address)}")
    contacts = ", ".join(esc(p.value) for p in card.contacts[:10]) or "none"
    facts.append(f"*Contacts:* {contacts}")
    facts.append(f"*Last touch:* {local_time(card.last_touch_at, tz)}")
    blocks.append(section("\n".join(facts)))
    if insight is not None:
        risk = (
            f"{insight.risk_level} ({insight.churn_probability:.0%})"
            if insight.churn_probability is not None
            else "not scored"
        )
        text = f"*Segment:* {esc(insight.segment or 'none')}  ·  *Churn risk:* {esc(risk)}"
        if insight.expected_value is not None and insight.p_alive is not None:
            text += (
                f"\n*Expected {insight.value_horizon_months}-month value:* "
                f"{insight.expected_value:,.2f}  ·  *Still active:* {insight.p_alive:.0%}"
            )
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
    rated = card.extras.get("satisfaction")
    if rated is not None:
        blocks.append(context(satisfaction_line(rated, tz)))
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
            f"{local_time(i.occurred_at, tz)} · {esc(i.channel)} · "
            f"{esc(one_line(i.subject or i.preview, 120))}"
            for i in card.recent_interactions[:5]
        ]
        blocks.append(section("*Last interactions*\n" + "\n".join(lines)))
    if card.next_follow_up:
        f = card.next_follow_up
        blocks.append(section(f"*Next follow-up:* {local_time(f.due_at, tz)} {esc(f.note)}"))
    if talks_about:
        blocks.append(section("*Talks about:* " + esc(one_line(", ".join(talks_about), 300))))
    if next_products:
        blocks.append(
            section(
                "*Likely to buy next*\n"
                + "\n".join(f"• {esc(one_line(p, 300))}" for p in next_products[:3])
            )
        )
    cid = str(c.id)
    blocks.append(
        ActionsBlock(
            block_id=f"card:{cid}",
            elements=[
                button("Log note", ids.LOG_NOTE, cid),
                button("New deal", ids.NEW_DEAL, cid),
                button("Follow up", ids.FOLLOW_UP, cid),
                button("Open timeline", ids.TIMELINE, cid),
            ],
        )
    )
    return message(blocks, f"Customer {c.name}")


def timeline_message(
    customer: Customer, items: Sequence[Interaction], *, tz: str, offset: int, has_more: bool
) -> dict[str, Any]:
    blocks: list[Block] = [section(f"*Timeline of {esc(customer_label(customer))}*")]
    if not items:
        blocks.append(context("Nothing recorded yet."))
    for i in items:
        head = f"{local_time(i.occurred_at, tz)} · {esc(i.channel)} · {esc(i.direction)}"
        if i.author:
            head += f" · {esc(i.author)}"
        body = esc(truncate((i.subject + ": " if i.subject else "") + (i.body or ""), 600))
        link = (i.meta or {}).get("permalink")
        if link:
            body += f" <{esc(link)}|link>"
        blocks.append(section(f"{head}\n{body}"))
    pager(blocks, "timeline", f"#{customer.id}", offset, has_more, len(items))
    return message(blocks, f"Timeline of {customer.name}")


def duplicate_pairs(
    pairs: Sequence[DuplicatePair], names: dict[int, str], *, min_score: float, total: int
) -> dict[str, Any]:
    """Likely duplicates, each with Merge (the second into the first) and Not a duplicate."""
    if not pairs:
        return message(
            [section(f"No likely duplicates (score {min_score:g} or more).")], "No duplicates"
        )
    blocks: list[Block] = [
        section(f"*Likely duplicates* (score {min_score:g} or more; {total:,} in all)")
    ]
    for p in pairs:
        first = f"#{p.low_id} {names.get(p.low_id, '?')}"
        second = f"#{p.high_id} {names.get(p.high_id, '?')}"
        value = f"{p.low_id}:{p.high_id}"
        blocks.append(
            section(
                f"*{p.score:.0f}* · {esc(first)} and {esc(second)}\n"
                + esc(one_line("; ".join(p.reasons), 300))
            )
        )
        blocks.append(
            ActionsBlock(
                elements=[
                    button(f"Merge into #{p.low_id}", ids.DUPLICATE_MERGE, value, "primary"),
                    button("Not a duplicate", ids.DUPLICATE_DISMISS, value),
                ]
            )
        )
    if total > len(pairs):
        blocks.append(
            context(f"Showing the best {len(pairs)}; `crmbot customer duplicates` lists all.")
        )
    return message(blocks, f"{total} likely duplicates")


def merged(text: str, merge_id: int) -> dict[str, Any]:
    """A merge done, with the button that undoes it."""
    undo = ActionsBlock(elements=[button("Undo merge", ids.UNDO_MERGE, str(merge_id))])
    return message([section(f":white_check_mark: {text}"), undo], text)
