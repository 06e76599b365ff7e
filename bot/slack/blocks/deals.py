"""Deals: one line per deal with its stage menu, deal lists, and the pipeline report."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from slack_sdk.models.blocks import Block, HeaderBlock, Option, StaticSelectElement

from bot.rendering import plural, truncate
from bot.rendering import slack_escape as esc
from bot.slack import ids
from bot.slack.blocks.base import (
    MAX_OPTIONS,
    changed,
    context,
    message,
    money,
    note,
    option,
    pager,
    section,
)
from crm.analytics.pipeline import PipelineReport
from crm.models import Deal


def deal_option(deal: Deal) -> Option:
    return option(f"#{deal.id} {deal.title} ({deal.stage})", str(deal.id))


def deal_line(deal: Deal, customer_name: str | None = None) -> str:
    who = f" · {esc(customer_name)}" if customer_name else ""
    close = f" · closes {deal.expected_close_date.isoformat()}" if deal.expected_close_date else ""
    value = money(deal.amount, deal.currency)
    return f"#{deal.id} *{esc(deal.title)}*{who} · {esc(deal.stage)} · {value}{close}"


def move_select(deal: Deal, stages: Sequence[str]) -> StaticSelectElement:
    return StaticSelectElement(
        placeholder="Move to…",
        action_id=ids.MOVE_STAGE,
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
    pager(blocks, "deals", args, offset, has_more, len(deals))
    return message(blocks, title)


def deal_changed(deal: Deal, verb: str) -> dict[str, Any]:
    return changed(f"Deal {deal_line(deal)} {verb}.")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _per_currency(values: dict[str, Decimal]) -> str:
    return ", ".join(money(v, c) for c, v in sorted(values.items())) or "0"


def pipeline_message(report: PipelineReport, *, who: str) -> dict[str, Any]:
    blocks: list[Block] = [HeaderBlock(text=truncate(f"Pipeline: {who}", 150))]
    lines = []
    for s in report.stages:
        median = f"{s.median_days:.1f} d" if s.median_days is not None else "–"
        lines.append(
            f"*{esc(s.stage)}*: {plural(s.count, 'deal')}, {_per_currency(s.value)}"
            f" · weighted {_per_currency(s.weighted)} ({s.probability:.0%})"
            f" · on to next {_pct(s.conversion_to_next)} · median {median} in stage"
        )
    blocks.append(section("\n".join(lines) or "No stages configured."))
    blocks.append(
        section(
            f"*Open:* {plural(report.open_deals, 'deal')}, {_per_currency(report.open_value)}\n"
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
