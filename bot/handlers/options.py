"""Type-ahead options for external selects: customers, and the chosen customer's open deals."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from bot.handlers.common import bot_context, read
from bot.slack import ids
from bot.slack.blocks.base import MAX_OPTIONS
from bot.slack.blocks.customers import customer_option
from bot.slack.blocks.deals import deal_option
from bot.slack.blocks.forms import option_list
from crm.services import customers as customer_svc
from crm.services import deals as deal_svc

logger = logging.getLogger(__name__)


def customer_options(ack: Ack, payload: dict[str, Any], context: dict[str, Any]) -> None:
    query = str(payload.get("value") or "").strip()
    if not query:
        ack(options=[])
        return
    matches = read(
        bot_context(context),
        lambda s: customer_svc.find_customers(s, query, limit=MAX_OPTIONS),
    )
    ack(**option_list([customer_option(m.customer) for m in matches]))


def _selected_customer(body: dict[str, Any]) -> int | None:
    values = ((body.get("view") or {}).get("state") or {}).get("values") or {}
    selected = ((values.get("customer") or {}).get(ids.OPTIONS_CUSTOMER) or {}).get(
        "selected_option"
    ) or {}
    value = str(selected.get("value") or "")
    return int(value) if value.isdigit() else None


def deal_options(
    ack: Ack, payload: dict[str, Any], body: dict[str, Any], context: dict[str, Any]
) -> None:
    customer_id = _selected_customer(body)
    if customer_id is None:
        ack(options=[])  # the deal list depends on the customer chosen above
        return
    query = str(payload.get("value") or "").strip().lower().lstrip("#")
    deals = read(
        bot_context(context), lambda s: deal_svc.list_deals(s, customer_id=customer_id, limit=500)
    )
    wanted = [d for d in deals if not query or query in d.title.lower() or query == str(d.id)]
    ack(**option_list([deal_option(d) for d in wanted]))


def register(app: App) -> None:
    app.options(ids.OPTIONS_CUSTOMER)(customer_options)
    app.options(ids.OPTIONS_DEAL)(deal_options)
