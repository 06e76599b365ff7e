"""The building blocks: Slack limits raise here, validators are found once per class, and the
faster serialisation gives exactly what slack_sdk gives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import SectionBlock

from bot.handlers.commands import VERBS
from bot.slack.blocks.base import (
    _slack_non_null_attributes,
    _validator_names,
    md,
    message,
    option,
    section,
)
from bot.slack.blocks.customers import customer_card, customer_matches, customer_option
from bot.slack.blocks.deals import deal_option
from bot.slack.blocks.forms import (
    deal_new_modal,
    follow_up_modal,
    log_message_modal,
    log_note_modal,
    option_list,
)
from bot.slack.blocks.help import help_message
from bot.slack.blocks.home import home_view
from crm.models import Deal, FollowUp, User, utcnow
from tests.bot.slack.blocks.samples import sample_card, sample_customer


def test_block_models_raise_on_slack_limits():
    with pytest.raises(SlackObjectFormationError):
        SectionBlock(text="x" * 3001).to_dict()
    with pytest.raises(ValueError):
        message([section("x")] * 51, "too many")
    assert len(section("y" * 5000).to_dict()["text"]["text"]) == 3000


def test_nested_block_violations_still_raise_with_validators_found_once_per_class():
    from slack_sdk.models.blocks import ActionsBlock, ButtonElement, StaticSelectElement

    too_long_button = ButtonElement(text="b" * 76, action_id="a", value="v")
    with pytest.raises(SlackObjectFormationError):
        message([ActionsBlock(elements=[too_long_button])], "x")
    select = StaticSelectElement(action_id="s", options=[option("o", str(i)) for i in range(101)])
    with pytest.raises(SlackObjectFormationError):
        message([section("pick", accessory=select)], "x")
    # The same validators as slack_sdk's own per-object scan of dir(self):
    for obj in (too_long_button, select, section("s"), md("m")):
        scanned = {
            name
            for name in dir(obj)
            if not name.startswith("__")
            and callable(getattr(obj, name, None))
            and hasattr(getattr(obj, name), "validator")
        }
        assert set(_validator_names(type(obj))) == scanned
    assert _validator_names(ButtonElement)


def _every_kind_of_payload() -> list[object]:
    c = sample_customer(domain="acme.example", company="Acme & Co <x>")
    deals = [
        Deal(id=i, customer_id=7, title=f"D{i}", stage="lead", amount=Decimal("5"))
        for i in range(3)
    ]
    card = sample_card(c, User(id=1, name="Rita"), deals, text="hi", note="call")
    from crm.services.customers import CustomerMatch

    return [
        customer_card(card, None, tz="Europe/Berlin", scored=False),
        customer_matches([CustomerMatch(c, 90.0, "fuzzy")] * 12, "acme", offset=0, has_more=True),
        deal_new_modal(stages=["lead", "won"], currency="EUR", customer=c),
        log_note_modal(c),
        follow_up_modal(c),
        log_message_modal(meta={"channel": "C1", "ts": "1.2"}, preview="a message", in_thread=True),
        option_list([customer_option(c), deal_option(deals[0])]),
        help_message(VERBS),
        home_view(
            user=User(id=1, name="Rita", timezone="Europe/Berlin"),
            follow_ups=[FollowUp(id=2, customer_id=7, due_at=utcnow())],
            follow_up_names={7: "Acme"},
            deals=deals,
            deal_names={7: "Acme"},
            rotting={},
            at_risk_rows=[],
            scored=False,
            stages=["lead", "qualified", "won", "lost"],
        ),
    ]


def test_serialised_payloads_are_exactly_slack_sdks(monkeypatch: pytest.MonkeyPatch):
    from slack_sdk.models.basic_objects import JsonObject

    ours = _every_kind_of_payload()
    monkeypatch.setattr(JsonObject, "get_non_null_attributes", _slack_non_null_attributes)
    theirs = _every_kind_of_payload()
    assert ours == theirs
    assert any(isinstance(p, dict) and p.get("type") == "modal" for p in ours)
