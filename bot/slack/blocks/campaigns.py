"""A campaign's report in Slack: per arm, and the uplift over the control group in words."""

from __future__ import annotations

from typing import Any

from bot.rendering import slack_escape as esc
from bot.slack.blocks.base import context, message, section
from crm.services.campaigns import Report


def campaign_report_message(report: Report) -> dict[str, Any]:
    if report.started_at and report.window_ends:
        window = f"responses from {report.started_at:%Y-%m-%d} to {report.window_ends:%Y-%m-%d}"
    else:
        window = "not sent yet"
    lines = [
        f"*{esc(a.arm)}*: {a.customers:,} customers, {a.contacted:,} contacted, "
        f"{a.responded:,} responded ({a.response_rate:.1%}), "
        f"revenue per customer {a.revenue_per_customer:,.2f}"
        for a in report.arms
    ]
    blocks: list[Any] = [
        section(
            f"*Campaign {esc(report.name)}* ({esc(report.status)}; {window})\n" + "\n".join(lines)
        )
    ]
    for u in report.uplifts:
        blocks.append(
            section(
                f"*{esc(u.arm)} vs {esc(report.control_arm)}*: {esc(u.sentence)}\n"
                f"Revenue per customer {u.revenue:+,.2f} "
                f"(95% CI {u.revenue_low:,.2f} to {u.revenue_high:,.2f})."
            )
        )
    blocks.append(
        context("A response: a reply to the campaign mail, a purchase, or a deal opened or won.")
    )
    return message(blocks, f"Campaign {report.name}")
