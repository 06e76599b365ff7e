"""App Home: my follow-ups due, my open deals (rotting ones flagged), my customers at risk;
and, opened from a link in a digest email, that customer's card on top."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from sqlmodel import Session

from bot.handlers.common import BotContext, read, start
from bot.slack.blocks.customers import customer_card
from bot.slack.blocks.home import home_view, notice_home
from crm.analytics import followups, pipeline
from crm.models import User, utcnow
from crm.services import customers as customer_svc
from crm.services import deals as deal_svc
from crm.services import followups as followup_svc
from crm.services import insights
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

DEALS_SHOWN = 20  # home_view lists 20 deals and says "and more" when there is a 21st
# A customer opened from a digest stays on top while the user looks (Slack re-renders the Home
# tab each time it is opened), then the tab goes back to its usual self.
FOCUS_SECONDS = 600


def home_for(
    bot: BotContext, user: User, *, now: datetime | None = None, focus: int | None = None
) -> dict[str, Any]:
    now = now or utcnow()

    def focused(session: Session) -> tuple[list[dict[str, Any]], str | None]:
        if focus is None:
            return [], None
        try:
            card = customer_svc.customer_card(session, focus)
        except CRMError:  # merged away or deleted since the digest went out
            return [], None
        insight, scored = insights.customer_insight_and_scored(session, focus)
        tz = user.timezone or bot.settings.timezone
        blocks = customer_card(
            card,
            insight,
            tz=tz,
            scored=scored,
            next_products=insights.next_products(session, focus),
            talks_about=insights.talks_about(session, focus),
        )["blocks"]
        meta = json.dumps({"focus": focus, "until": int(time.time()) + FOCUS_SECONDS})
        return blocks, meta

    def run(session: Session) -> dict[str, Any]:
        # "Due" on the Home tab: overdue and due within the next day.
        due = followup_svc.list_follow_ups(
            session, owner_id=user.id, due_before=now + timedelta(days=1), limit=11
        )
        # The same records and rule as the analytics findings, live for this user's deals.
        found = followups.rotting_deals(
            now,
            pipeline.deal_records(session, now, owner_id=user.id),
            pipeline.rotting_limits(bot.settings),
        )
        rotting = {f.deal_id: f for f in found if f.deal_id is not None}
        # Rotting deals first, longest idle first: they are the ones that need the rep today.
        shown = [deal_svc.get_deal(session, i) for i in list(rotting)[: DEALS_SHOWN + 1]]
        others = [
            d
            for d in deal_svc.list_deals(session, owner_id=user.id, limit=DEALS_SHOWN + 1)
            if d.id not in rotting
        ]
        deals = (shown + others)[: DEALS_SHOWN + 1]
        risk = insights.at_risk_customers(session, owner_id=user.id, limit=10)
        scored = bool(risk) or insights.latest_run(session) is not None
        ids = {f.customer_id for f in due} | {d.customer_id for d in deals}
        names = {cid: customer_svc.get_customer(session, cid).name for cid in ids}
        focus_blocks, metadata = focused(session)
        return home_view(
            focus=focus_blocks,
            private_metadata=metadata,
            user=user,
            follow_ups=due,
            follow_up_names=names,
            deals=deals,
            deal_names=names,
            rotting=rotting,
            at_risk_rows=risk,
            scored=scored,
            stages=bot.settings.stage_names,
        )

    return read(bot, run)


def publish_home(
    context: dict[str, Any], client: WebClient, slack_user_id: str, *, focus: int | None = None
) -> bool:
    """Show a user their Home tab (or, to a user who cannot use the CRM, why not); with
    ``focus``, that customer's card on top. False when the user may not use the CRM."""

    def refuse(err: CRMError) -> None:  # e.g. a deactivated account
        client.views_publish(user_id=slack_user_id, view=notice_home(err))

    who = start(context, client, slack_user_id, refuse=refuse)
    if who is None:
        return False
    client.views_publish(user_id=slack_user_id, view=home_for(who.bot, who.user, focus=focus))
    return True


def still_focused(view: Any) -> int | None:
    """The customer the Home tab was showing on top, if it was put there moments ago."""
    try:
        meta = json.loads((view or {}).get("private_metadata") or "{}")
        focus, until = meta.get("focus"), meta.get("until")
    except (AttributeError, TypeError, ValueError):
        return None
    if isinstance(focus, int) and isinstance(until, int) and until > time.time():
        return focus
    return None


def app_home_opened(event: dict[str, Any], client: WebClient, context: dict[str, Any]) -> None:
    if event.get("tab", "home") != "home":
        return
    publish_home(context, client, event["user"], focus=still_focused(event.get("view")))


def show_customer_on_home(
    bot: BotContext, client: WebClient, *, user_id: int, customer_id: int
) -> bool:
    """Put a customer's card on top of a CRM user's Home tab (a digest email's link does this
    before sending them to Slack). False when the user has no Slack account or may not act."""
    with bot.db.lookup() as session:
        user = session.get(User, user_id)
        slack_user_id = user.slack_user_id if user is not None and user.active else None
    if not slack_user_id:
        return False
    return publish_home({"crm": bot}, client, slack_user_id, focus=customer_id)


def register(app: App) -> None:
    app.event("app_home_opened")(app_home_opened)
