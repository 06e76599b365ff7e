"""The App Home tab: follow-ups due, open deals (rotting ones flagged), customers at risk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import Block, DividerBlock, HeaderBlock

from bot.rendering import slack_escape as esc
from bot.rendering import truncate
from bot.slack import ids
from bot.slack.blocks.base import MAX_VIEW_BLOCKS, button, context, payload, section, warning
from bot.slack.blocks.customers import customer_label
from bot.slack.blocks.deals import deal_line, move_select
from bot.slack.blocks.followups import follow_up_actions, follow_up_line
from crm.analytics.followups import FindingDraft
from crm.models import Deal, FollowUp, User
from crm.services.insights import AtRisk


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
    focus: Sequence[dict[str, Any]] = (),
    private_metadata: str | None = None,
) -> dict[str, Any]:
    """The Home tab; ``focus``, a customer's card (blocks) opened from a digest email, on top."""
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
                accessory=button("Show", ids.OPEN_CUSTOMER, str(risk.customer.id)),
            )
        )
    shown = list(focus)
    if shown:
        shown.append(DividerBlock().to_dict())
    view: dict[str, Any] = {
        "type": "home",
        "blocks": shown + payload(blocks, "home", limit=MAX_VIEW_BLOCKS - len(shown)),
    }
    if private_metadata:
        view["private_metadata"] = private_metadata
    return view


def notice_home(err: Exception) -> dict[str, Any]:
    """The App Home of a user who cannot use the CRM, saying why."""
    return {"type": "home", "blocks": payload([warning(err)], "home")}
