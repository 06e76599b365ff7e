"""Analytics shown in Slack: the customers most at risk of churning, the most valuable, and
segment sizes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import Block

from bot.rendering import slack_escape as esc
from bot.slack import ids
from bot.slack.blocks.base import MAX_MESSAGE_BLOCKS, button, message, note, section
from bot.slack.blocks.customers import customer_label
from crm.models import Customer
from crm.services.insights import AtRisk, SegmentCount, SegmentTopics
from crm.services.values import ValueView


def at_risk_message(rows: Sequence[AtRisk], *, scored: bool) -> dict[str, Any]:
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
                accessory=button("Show", ids.OPEN_CUSTOMER, str(r.customer.id)),
            )
        )
    return message(blocks[:MAX_MESSAGE_BLOCKS], "Customers at risk")


def top_value_message(
    rows: Sequence[tuple[Customer, ValueView]], *, scored: bool, own: bool
) -> dict[str, Any]:
    if not scored:
        return note("Nothing is scored yet: customer value appears after the first analytics run.")
    if not rows:
        return note(
            "No customer of yours has a value in the latest run."
            if own
            else "No customer has a value in the latest run."
        )
    horizon = rows[0][1].horizon_months
    title = "Your most valuable customers" if own else "Most valuable customers"
    blocks: list[Block] = [section(f"*{title}* (expected {horizon}-month spend)")]
    for customer, worth in rows:
        blocks.append(
            section(
                f"*{esc(customer_label(customer))}* · {worth.expected_spend:,.2f} "
                f"({worth.expected_purchases:.1f} purchases) · still active {worth.p_alive:.0%}",
                accessory=button("Show", ids.OPEN_CUSTOMER, str(customer.id)),
            )
        )
    return message(blocks[:MAX_MESSAGE_BLOCKS], title)


def segments_message(rows: Sequence[SegmentCount]) -> dict[str, Any]:
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


def topics_message(rows: Sequence[SegmentTopics], *, days: int) -> dict[str, Any]:
    """What each segment talks about: its topics, and the terms rising this period."""
    if not rows:
        return note(
            "No topics yet: they appear once an analytics run has read interactions with text."
        )
    blocks: list[Block] = [section(f"*What customers talk about* (rising: last {days} days)")]
    for r in rows[: MAX_MESSAGE_BLOCKS - 1]:
        lines = [f"*{esc(r.segment)}*"]
        if r.topics:
            lines.append(
                "Topics: "
                + "; ".join(f"{esc(label)} ({share:.0%})" for label, share, _n in r.topics)
            )
        if r.rising:
            lines.append(
                "Rising: "
                + ", ".join(f"{esc(t)} ({now:.0%}, was {was:.0%})" for t, now, was in r.rising)
            )
        elif r.terms:
            lines.append("Most said: " + ", ".join(esc(t) for t, _c in r.terms[:5]))
        blocks.append(section("\n".join(lines)))
    return message(blocks, "What customers talk about")
