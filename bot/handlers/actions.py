"""Buttons and menus on cards, lists, digests and the Home tab: they act directly."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.handlers.commands import answer_verb
from bot.handlers.common import (
    BotContext,
    Caller,
    bot_context,
    direct_message,
    read,
    start,
    write,
)
from bot.handlers.home import publish_home, still_focused
from bot.slack import ids
from bot.slack.blocks.base import changed, error_message, local_time, note
from bot.slack.blocks.deals import deal_changed
from bot.slack.blocks.forms import deal_new_modal, follow_up_modal, log_note_modal
from crm.config import reveal
from crm.services import customers as customer_svc
from crm.services import deals as deal_svc
from crm.services import followups as followup_svc
from crm.services import merges as merge_svc
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)


def _action(body: dict[str, Any]) -> dict[str, Any]:
    return (body.get("actions") or [{}])[0]


def _from_home(body: dict[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home"


def _reply(
    context: dict[str, Any],
    client: WebClient,
    body: dict[str, Any],
    respond: Respond,
    reply: dict[str, Any],
    *,
    failed: bool = False,
) -> None:
    """Answer where the click came from: refresh the Home tab, or post back to the message."""
    if not _from_home(body):
        respond(**reply)
        return
    # A customer opened from a digest stays on top while the user works through the tab.
    publish_home(context, client, body["user"]["id"], focus=still_focused(body.get("view")))
    if failed:
        # Home has no response URL: a mistake is explained in the app's DM.
        direct_message(client, body["user"]["id"], reply)


def _int_value(action: dict[str, Any]) -> int:
    raw = str(action.get("value") or (action.get("selected_option") or {}).get("value") or "")
    head = raw.split(":", 1)[0]
    if not head.isdigit():
        raise CRMError("That button carries no valid id.")
    return int(head)


def _customer_of(bot: BotContext, action: dict[str, Any]) -> Any:
    return read(bot, lambda s: customer_svc.get_customer(s, _int_value(action)))


def _refusal(
    context: dict[str, Any], client: WebClient, body: dict[str, Any], respond: Respond
) -> Callable[[CRMError], None]:
    """How a click's mistake is told: where the click came from (see ``_reply``)."""

    def refuse(err: CRMError) -> None:
        _reply(context, client, body, respond, error_message(err), failed=True)

    return refuse


def open_card_modal(
    ack: Ack, body: dict[str, Any], client: WebClient, context: dict[str, Any], respond: Respond
) -> None:
    """Log note / New deal / Follow up on a customer card: open the matching form."""
    refuse = _refusal(context, client, body, respond)
    who = start(context, client, body["user"]["id"], ack=ack, writes=True, refuse=refuse)
    if who is None:
        return
    action = _action(body)
    try:
        customer = _customer_of(who.bot, action)
    except CRMError as err:
        refuse(err)
        return
    settings = who.bot.settings
    view = {
        ids.LOG_NOTE: lambda: log_note_modal(customer),
        ids.FOLLOW_UP: lambda: follow_up_modal(customer),
        ids.NEW_DEAL: lambda: deal_new_modal(
            stages=settings.open_stages, currency=settings.default_currency, customer=customer
        ),
    }[action["action_id"]]()
    client.views_open(trigger_id=body["trigger_id"], view=view)


def show_or_timeline(
    ack: Ack, body: dict[str, Any], client: WebClient, context: dict[str, Any], respond: Respond
) -> None:
    ack()
    action = _action(body)
    verb = "timeline" if action["action_id"] == ids.TIMELINE else "show"
    reply = answer_verb(context, client, body["user"]["id"], verb, f"#{action.get('value', '')}")
    if _from_home(body):
        direct_message(client, body["user"]["id"], reply)
    else:
        respond(**reply)


def next_page(
    ack: Ack, body: dict[str, Any], client: WebClient, context: dict[str, Any], respond: Respond
) -> None:
    ack()
    try:
        state = json.loads(_action(body).get("value") or "{}")
        verb, args, offset = str(state["verb"]), str(state.get("args", "")), int(state["offset"])
    except (ValueError, KeyError, TypeError):
        respond(**note("That page button is broken; run the command again."))
        return
    reply = answer_verb(context, client, body["user"]["id"], verb, args, offset=max(0, offset))
    respond(**reply, replace_original=True)


def _act(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    context: dict[str, Any],
    respond: Respond,
    change: Callable[[Caller], dict[str, Any]],
) -> None:
    """Make a button's change as the user who clicked, and answer where the click came from.

    A mistake (no permission, a follow-up already gone...) is explained to the user.
    """
    refuse = _refusal(context, client, body, respond)
    who = start(context, client, body["user"]["id"], ack=ack, refuse=refuse)
    if who is None:
        return
    try:
        reply = change(who)
    except CRMError as err:
        refuse(err)
        return
    _reply(context, client, body, respond, reply)


def follow_up_button(
    ack: Ack, body: dict[str, Any], client: WebClient, context: dict[str, Any], respond: Respond
) -> None:
    """Mark done / Snooze 1 day / Snooze 1 week."""
    action = _action(body)

    def change(who: Caller) -> dict[str, Any]:
        follow_up_id = _int_value(action)
        if action["action_id"] == ids.FOLLOW_UP_DONE:
            write(
                who.bot,
                lambda s: followup_svc.complete_follow_up(
                    s, follow_up_id=follow_up_id, actor=who.actor
                ),
            )
            return changed(f"Follow-up #{follow_up_id} is done.")
        days = 1 if action["action_id"] == ids.FOLLOW_UP_SNOOZE_DAY else 7
        f = write(
            who.bot,
            lambda s: followup_svc.snooze_follow_up(
                s, follow_up_id=follow_up_id, actor=who.actor, until=timedelta(days=days), tz=who.tz
            ),
        )
        return changed(f"Follow-up #{follow_up_id} snoozed to {local_time(f.due_at, who.tz)}.")

    _act(ack, body, client, context, respond, change)


def csat_button(ack: Ack, body: dict[str, Any], context: dict[str, Any], respond: Respond) -> None:
    """A rating button of a survey posted in a customer's Slack Connect channel. Only someone
    from the customer's side (another workspace) can answer; the signed token is checked, and
    a survey is answered once."""
    from bot.slack.blocks.surveys import survey_answered
    from crm.services import surveys

    ack()
    bot = bot_context(context)
    ours = (body.get("team") or {}).get("id")
    theirs = (body.get("user") or {}).get("team_id")
    if not theirs or theirs == ours:
        respond(note("Only the customer can answer this survey.", replace=False))
        return
    try:
        token = _action(body)["value"]
        survey_id, rating = surveys.read_rating_token(reveal(bot.settings.secret_key) or "", token)
        write(bot, lambda s: surveys.record_rating(s, survey_id=survey_id, rating=rating))
    except CRMError as err:
        respond(error_message(err))
        return
    respond(survey_answered(rating))


def move_stage(
    ack: Ack, body: dict[str, Any], client: WebClient, context: dict[str, Any], respond: Respond
) -> None:
    """The "Move to…" menu next to a deal."""
    value = str((_action(body).get("selected_option") or {}).get("value") or "")
    deal_part, _, stage = value.partition(":")

    def change(who: Caller) -> dict[str, Any]:
        if not deal_part.isdigit() or not stage:
            raise CRMError("That menu option carries no deal and stage.")
        deal_id = int(deal_part)
        if stage == "lost":
            raise CRMError(
                "A lost deal needs a reason.", hint=f"Use `/crm deal {deal_id} lost <reason>`."
            )
        deal = write(
            who.bot,
            lambda s: deal_svc.move_deal(
                s, deal_id=deal_id, stage=stage, actor=who.actor, settings=who.bot.settings
            ),
        )
        return deal_changed(deal, "moved")

    _act(ack, body, client, context, respond, change)


def _pair(action: dict[str, Any]) -> tuple[int, int]:
    first, _, second = str(action.get("value") or "").partition(":")
    if not (first.isdigit() and second.isdigit()):
        raise CRMError("That button carries no pair of customers.")
    return int(first), int(second)


def duplicate_button(
    ack: Ack, body: dict[str, Any], client: WebClient, context: dict[str, Any], respond: Respond
) -> None:
    """Merge / Not a duplicate beside a pair in `/crm duplicates`; Undo merge after a merge."""
    action = _action(body)
    if action["action_id"] in (ids.UNDO_MERGE, ids.DUPLICATE_MERGE):
        # The same as typing the verb: its checks, its reply (a merge's has Undo).
        ack()
        value = str(action.get("value") or "")
        args = value if action["action_id"] == ids.UNDO_MERGE else value.replace(":", " ")
        if action["action_id"] == ids.DUPLICATE_MERGE:
            args = " ".join(f"#{part}" for part in args.split())
        verb = "unmerge" if action["action_id"] == ids.UNDO_MERGE else "merge"
        _reply(
            context,
            client,
            body,
            respond,
            answer_verb(context, client, body["user"]["id"], verb, args),
        )
        return

    def change(who: Caller) -> dict[str, Any]:
        first, second = _pair(action)
        write(
            who.bot,
            lambda s: merge_svc.dismiss_duplicate(
                s, first_id=first, second_id=second, actor=who.actor
            ),
        )
        return changed(f"Noted: #{first} and #{second} are different customers.")

    _act(ack, body, client, context, respond, change)


def register(app: App) -> None:
    for action_id in (ids.LOG_NOTE, ids.NEW_DEAL, ids.FOLLOW_UP):
        app.action(action_id)(open_card_modal)
    app.action(ids.TIMELINE)(show_or_timeline)
    app.action(ids.OPEN_CUSTOMER)(show_or_timeline)
    app.action(ids.NEXT_PAGE)(next_page)
    for action_id in (ids.FOLLOW_UP_DONE, ids.FOLLOW_UP_SNOOZE_DAY, ids.FOLLOW_UP_SNOOZE_WEEK):
        app.action(action_id)(follow_up_button)
    app.action(ids.MOVE_STAGE)(move_stage)
    for action_id in (ids.DUPLICATE_MERGE, ids.DUPLICATE_DISMISS, ids.UNDO_MERGE):
        app.action(action_id)(duplicate_button)
    app.action(re.compile(f"^{ids.CSAT_RATE}[1-5]$"))(csat_button)
