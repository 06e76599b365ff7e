"""Form submissions: new deal, log note, follow-up, and "Log to CRM" for a message.

The change is made before ``ack()`` so a mistake can be shown on the form itself
(``response_action: errors``); the services are fast enough for Slack's 3 seconds.
"Log to CRM" is the exception: it checks the form, acks, then reads the thread from Slack.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from typing import Any, NamedTuple

from pydantic import ValidationError
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.handlers.common import BotContext, direct_message, read, start, write
from bot.handlers.events import chat_message
from bot.rendering import plural
from bot.rendering import slack_escape as esc
from bot.slack import ids
from bot.slack.blocks.base import changed, local_time, not_logged
from bot.slack.blocks.customers import customer_label
from bot.slack.blocks.deals import deal_changed
from bot.slack.blocks.forms import notice_modal
from crm.models import Channel, DealCreate, InteractionCreate, User
from crm.services import customers as customer_svc
from crm.services import deals as deal_svc
from crm.services import erasure, slack_capture
from crm.services import followups as followup_svc
from crm.services import interactions as interaction_svc
from crm.services.actor import Actor
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)


def _values(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{block_id: the element's state} for the form's inputs."""
    values = (view.get("state") or {}).get("values") or {}
    return {block: next(iter(actions.values()), {}) for block, actions in values.items() if actions}


def _text(values: dict[str, dict[str, Any]], block: str) -> str:
    return str((values.get(block) or {}).get("value") or "").strip()


def _selected(values: dict[str, dict[str, Any]], block: str) -> str:
    return str(((values.get(block) or {}).get("selected_option") or {}).get("value") or "")


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        raise CRMError("This form is damaged; open it again.") from None
    return meta if isinstance(meta, dict) else {}


def _field_for(err: CRMError, blocks_present: list[str], default: str) -> str:
    text = str(err).lower()
    for block in blocks_present:
        if re.search(rf"\b{re.escape(block)}\b", text):
            return block
    return default


def _form_error(ack: Ack, err: CRMError, view: dict[str, Any], default: str) -> None:
    present = [
        b.get("block_id")
        for b in view.get("blocks") or []
        if b.get("type") == "input" and b.get("block_id")
    ]
    ack(response_action="errors", errors={_field_for(err, present, default): str(err)[:150]})


def _confirm(client: WebClient, user_id: str, reply: dict[str, Any]) -> None:
    # The data is saved already; a failed confirmation must not look like a failed save.
    direct_message(client, user_id, reply)


class Submission(NamedTuple):
    """Who submitted a form, and what they entered."""

    bot: BotContext
    values: dict[str, dict[str, Any]]
    user_id: str
    user: User
    actor: Actor
    tz: str  # theirs, else the team's


def _submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: dict[str, Any]
) -> Submission | None:
    """Who submitted the form and what they entered; None (the form answered) if they may not act."""

    def refuse(err: CRMError) -> None:  # e.g. deactivated since the form was opened
        ack(response_action="update", view=notice_modal("crmbot", err))

    who = start(context, client, body["user"]["id"], refuse=refuse)
    if who is None:
        return None
    return Submission(who.bot, _values(view), who.slack_user_id, who.user, who.actor, who.tz)


# DealCreate's fields -> the form's blocks
_DEAL_BLOCKS = {"customer_id": "customer", "expected_close_date": "close"}


def deal_new(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: dict[str, Any]
) -> None:
    if (sub := _submission(ack, body, view, client, context)) is None:
        return
    bot, values, user_id, _user, actor, _tz = sub
    try:
        customer = _selected(values, "customer")
        if not customer.isdigit():
            raise CRMError("Choose a customer.")
        close = (values.get("close") or {}).get("selected_date")
        deal_in = DealCreate(
            customer_id=int(customer),
            title=_text(values, "title"),
            amount=_text(values, "amount") or "0",  # type: ignore[arg-type]
            currency=_text(values, "currency") or None,
            stage=_selected(values, "stage") or None,
            expected_close_date=date.fromisoformat(close) if close else None,
        )
        deal = write(
            bot,
            lambda s: deal_svc.open_deal(s, deal_in=deal_in, actor=actor, settings=bot.settings),
        )
    except CRMError as err:
        _form_error(ack, err, view, "title")
        return
    except ValidationError as err:  # e.g. an amount that is not a number
        first = err.errors()[0]
        field = str((first.get("loc") or ("title",))[0])
        block = _DEAL_BLOCKS.get(field, field)
        ack(response_action="errors", errors={block: str(first.get("msg"))[:150]})
        return
    except ValueError:
        ack(response_action="errors", errors={"close": "That is not a date."})
        return
    ack()
    _confirm(client, user_id, deal_changed(deal, "opened"))


def log_note(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: dict[str, Any]
) -> None:
    if (sub := _submission(ack, body, view, client, context)) is None:
        return
    bot, values, user_id, user, actor, _tz = sub
    try:
        meta = _metadata(view)
        kind = Channel(_selected(values, "kind") or "note")
        text = _text(values, "text")
        if not text:
            raise CRMError("Write what happened.")

        def run(session: Any) -> Any:
            customer = customer_svc.get_customer(session, int(meta.get("customer_id") or 0))
            interaction_svc.record_interaction(
                session,
                actor=actor,
                default_currency=bot.settings.default_currency,
                interaction_in=InteractionCreate(
                    customer_id=customer.id,  # type: ignore[arg-type]
                    channel=kind,
                    body=text,  # type: ignore[arg-type]
                    author=user.email or user.name,
                    source="slack:form",
                ),
            )
            return customer

        customer = write(bot, run)
    except CRMError as err:
        _form_error(ack, err, view, "text")
        return
    ack()
    _confirm(
        client,
        user_id,
        changed(f"Logged a {kind.value} for *{esc(customer_label(customer))}*."),
    )


def follow_up(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: dict[str, Any]
) -> None:
    if (sub := _submission(ack, body, view, client, context)) is None:
        return
    bot, values, user_id, user, actor, tz = sub
    try:
        meta = _metadata(view)
        made = write(
            bot,
            lambda s: followup_svc.create_follow_up(
                s,
                customer_id=int(meta.get("customer_id") or 0),
                when=_text(values, "when"),
                note=_text(values, "note"),
                actor=actor,
                tz=tz,
                kind=_selected(values, "kind") or "sales",
            ),
        )
    except CRMError as err:
        _form_error(ack, err, view, "when")
        return
    ack()
    _confirm(
        client,
        user_id,
        changed(f"Follow-up #{made.id} set for {local_time(made.due_at, tz)}."),
    )


def _fetch_messages(
    client: WebClient, meta: dict[str, Any], whole_thread: bool
) -> list[dict[str, Any]]:
    channel, ts = meta["channel"], meta["ts"]
    root = meta.get("thread_ts") or ts
    messages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.conversations_replies(channel=channel, ts=root, cursor=cursor, limit=200)
        messages.extend(page.get("messages") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not whole_thread or not cursor:
            break
    if not whole_thread:
        messages = [m for m in messages if m.get("ts") == ts]
    if not messages:
        raise CRMError("Slack did not return that message; it may have been deleted.")
    for m in messages:
        m.setdefault("channel", channel)
    return messages


# https://<workspace>.slack.com/archives/<channel>/p<ts without the dot>[?thread_ts=...]
_PERMALINK = re.compile(r"^(?P<base>https?://[^?#\s]+/archives/[A-Z0-9]+)/p\d+(?:\?\S*)?$")


def _permalinks(
    client: WebClient, channel: str, messages: list[dict[str, Any]]
) -> dict[str, str | None]:
    """{ts: permalink}, asking Slack once: the others follow the first one's pattern.

    One chat.getPermalink per message would make a long thread cost a call per reply.
    Should Slack ever answer in another shape, each message is asked for instead.
    """
    first = messages[0]
    link = client.chat_getPermalink(channel=channel, message_ts=first["ts"]).get("permalink")
    pattern = _PERMALINK.match(link or "")
    links: dict[str, str | None] = {first["ts"]: link}
    for m in messages[1:]:
        ts = str(m["ts"])
        if pattern is None:
            links[ts] = client.chat_getPermalink(channel=channel, message_ts=ts).get("permalink")
            continue
        url = f"{pattern['base']}/p{ts.replace('.', '')}"
        thread_ts = m.get("thread_ts")
        if thread_ts and thread_ts != ts:
            url += f"?thread_ts={thread_ts}&cid={channel}"
        links[ts] = url
    return links


def log_message(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: dict[str, Any]
) -> None:
    """Store the message (or its whole thread) with a permalink, for the chosen customer/deal.

    Only the form is checked before ``ack()``: reading a long thread from Slack can take
    longer than the 3 seconds Slack waits for the answer, so the messages are fetched and
    stored after it, and the outcome is sent to the user's DM.
    """
    if (sub := _submission(ack, body, view, client, context)) is None:
        return
    bot, values, user_id, _user, actor, _tz = sub
    try:
        actor.require_write()
        meta = _metadata(view)
        if not meta.get("channel") or not meta.get("ts"):
            raise CRMError("This form lost track of its message; use the shortcut again.")
        customer = _selected(values, "customer")
        if not customer.isdigit():
            raise CRMError("Choose a customer.")
    except CRMError as err:
        _form_error(ack, err, view, "customer")
        return
    deal = _selected(values, "deal")
    customer_id, deal_id = int(customer), (int(deal) if deal.isdigit() else None)

    def problem(session: Any) -> tuple[str, CRMError] | None:
        try:
            customer_svc.get_customer(session, customer_id)
        except CRMError as err:
            return "customer", err
        try:
            slack_capture.check_log_target(session, customer_id=customer_id, deal_id=deal_id)
        except CRMError as err:
            return "deal", err
        return None

    if found := read(bot, problem):
        field, mistake = found
        ack(response_action="errors", errors={field: str(mistake)[:150]})
        return
    ack()
    whole_thread = bool((values.get("thread") or {}).get("selected_options"))
    team = meta.get("team") or (body.get("team") or {}).get("id")
    try:
        try:
            raw = _fetch_messages(client, meta, whole_thread)
            permalinks = _permalinks(client, meta["channel"], raw)
        except SlackApiError as exc:
            raise CRMError(
                f"Slack would not give me the message ({exc.response.get('error')})."
            ) from None
        messages = [
            chat_message(m, team=team, client=client, permalink=permalinks.get(m["ts"]))
            for m in raw
        ]
        results = write(
            bot,
            lambda s: slack_capture.log_messages(
                s, customer_id=customer_id, deal_id=deal_id, messages=messages, actor=actor
            ),
        )
    except CRMError as err:
        logger.info("Log to CRM by %s failed: %s", user_id, err)
        _confirm(client, user_id, not_logged(err))
        return
    stored = sum(1 for r in results if r.created)
    already = sum(1 for r in results if r.interaction is not None and not r.created)
    text = (
        f"Logged {plural(stored, 'message')} to customer #{customer_id}"
        + (f" ({already} {'was' if already == 1 else 'were'} logged already)" if already else "")
        + "."
    )
    _confirm(client, user_id, changed(text))


def forget_customer(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: dict[str, Any]
) -> None:
    """The confirmed erasure: the typed #id must match the customer the form was opened for."""
    if (sub := _submission(ack, body, view, client, context)) is None:
        return
    bot, values, user_id, _user, actor, _tz = sub
    try:
        customer_id = int(_metadata(view).get("customer_id") or 0)
        if _text(values, "confirm").lstrip("#") != str(customer_id):
            raise CRMError(f"Type {customer_id} to confirm.")

        def run(session: Any) -> erasure.ErasureResult:
            return erasure.forget_customer(
                session,
                actor=actor,
                customer_id=customer_id,
                reason=_text(values, "reason"),
                key=erasure.hashing_key(session, bot.settings.hmac_key),
                remember_contacts=bot.settings.forget_blocks_capture,
            )

        result = write(bot, run)
    except CRMError as err:
        _form_error(ack, err, view, "confirm" if "confirm" in str(err) else "reason")
        return
    ack()
    bot.db.flush_deleted()
    removed = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in result.removed.items() if n)
    _confirm(
        client,
        user_id,
        changed(
            f"Erased customer #{result.customer_id} (record {result.customer}). "
            f"Removed: {removed or 'nothing else'}. "
            f"Audit events scrubbed: {result.scrubbed_events}."
        ),
    )


def register(app: App) -> None:
    app.view(ids.FORM_DEAL_NEW)(deal_new)
    app.view(ids.FORM_LOG_NOTE)(log_note)
    app.view(ids.FORM_FOLLOW_UP)(follow_up)
    app.view(ids.FORM_LOG_MESSAGE)(log_message)
    app.view(ids.FORM_FORGET)(forget_customer)
