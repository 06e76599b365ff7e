"""Forms (modals): new deal, log note, follow up, "Log to CRM"; and type-ahead options for them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    CheckboxesElement,
    DatePickerElement,
    ExternalDataSelectElement,
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.rendering import slack_escape as esc
from bot.rendering import truncate
from bot.slack import ids
from bot.slack.blocks.base import MAX_OPTIONS, option, section, warning
from bot.slack.blocks.customers import customer_label, customer_option
from crm.models import Customer


def _customer_input(initial: Customer | None, block_id: str = "customer") -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label="Customer",
        element=ExternalDataSelectElement(
            action_id=ids.OPTIONS_CUSTOMER,
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


def deal_new_modal(
    *, stages: Sequence[str], currency: str, customer: Customer | None
) -> dict[str, Any]:
    return modal(
        ids.FORM_DEAL_NEW,
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


def forget_modal(customer: Customer, reason: str) -> dict[str, Any]:
    """The confirmation before erasing a person: what goes, what stays, and their #id typed."""
    return modal(
        ids.FORM_FORGET,
        "Erase personal data",
        [
            section(
                f":warning: This erases *{esc(customer_label(customer))}* everywhere: contact "
                "points, conversations, follow-ups, analytics, and their data in the audit "
                "trail. Deal and purchase amounts stay, without their name. It cannot be undone."
            ),
            _text_input(
                "reason", "Why (the request; kept in the audit trail)", initial=reason or None
            ),
            _text_input(
                "confirm",
                f"Type {customer.id} to confirm",
                placeholder=str(customer.id),
            ),
        ],
        submit="Erase",
        private_metadata=json.dumps({"customer_id": customer.id}),
    )


def log_note_modal(customer: Customer) -> dict[str, Any]:
    kinds = [option("Note", "note"), option("Call", "call"), option("Meeting", "meeting")]
    return modal(
        ids.FORM_LOG_NOTE,
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
    kinds = [
        option("Sales", "sales"),
        option("Service (may bring a satisfaction survey)", "service"),
    ]
    return modal(
        ids.FORM_FOLLOW_UP,
        "Follow up",
        [
            section(f"Follow up with *{esc(customer_label(customer))}*"),
            _text_input("when", "When", placeholder="tomorrow 9am, in 3 days, next friday"),
            _text_input("note", "Note", optional=True, multiline=True),
            InputBlock(
                block_id="kind",
                label="Kind",
                element=StaticSelectElement(
                    action_id="value", options=kinds, initial_option=kinds[0]
                ),
            ),
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
                action_id=ids.OPTIONS_DEAL,
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
        ids.FORM_LOG_MESSAGE, "Log to CRM", blocks, submit="Log", private_metadata=json.dumps(meta)
    )


def option_list(items: Sequence[Option]) -> dict[str, Any]:
    return {"options": [o.to_dict() for o in items[:MAX_OPTIONS]]}
