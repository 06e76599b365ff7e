from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import SectionBlock

from bot import blocks
from bot.handlers.commands import VERBS, split_customer, split_when
from crm.models import Channel, Customer, Deal, Direction, FollowUp, User, utcnow
from crm.services.customers import CustomerCard, InteractionPreview


def _customer(**kw):
    return Customer(id=kw.pop("id", 7), name=kw.pop("name", "Acme"), name_key="acme", **kw)


def _card(
    c: Customer, owner: User | None, deals: list[Deal], *, text: str, note: str
) -> CustomerCard:
    """A card with one recent interaction whose preview is ``text``."""
    return CustomerCard(
        customer=c,
        owner=owner,
        contacts=[],
        open_deals=deals,
        recent_interactions=[
            InteractionPreview(
                id=1,
                occurred_at=utcnow(),
                channel=Channel.email,
                direction=Direction.inbound,
                subject=None,
                preview=text,
            )
        ],
        next_follow_up=FollowUp(id=1, customer_id=7, due_at=utcnow(), note=note),
        last_touch_at=utcnow(),
    )


def test_block_models_raise_on_slack_limits():
    with pytest.raises(SlackObjectFormationError):
        SectionBlock(text="x" * 3001).to_dict()
    with pytest.raises(ValueError):
        blocks.message([blocks.section("x")] * 51, "too many")
    assert len(blocks.section("y" * 5000).to_dict()["text"]["text"]) == 3000


def test_nested_block_violations_still_raise_with_validators_found_once_per_class():
    from slack_sdk.models.blocks import ActionsBlock, ButtonElement, StaticSelectElement

    too_long_button = ButtonElement(text="b" * 76, action_id="a", value="v")
    with pytest.raises(SlackObjectFormationError):
        blocks.message([ActionsBlock(elements=[too_long_button])], "x")
    select = StaticSelectElement(
        action_id="s", options=[blocks.option("o", str(i)) for i in range(101)]
    )
    with pytest.raises(SlackObjectFormationError):
        blocks.message([blocks.section("pick", accessory=select)], "x")
    # The same validators as slack_sdk's own per-object scan of dir(self):
    for obj in (too_long_button, select, blocks.section("s"), blocks.md("m")):
        scanned = {
            name
            for name in dir(obj)
            if not name.startswith("__")
            and callable(getattr(obj, name, None))
            and hasattr(getattr(obj, name), "validator")
        }
        assert set(blocks._validator_names(type(obj))) == scanned
    assert blocks._validator_names(ButtonElement)


def test_card_with_huge_user_text_stays_within_limits():
    long = "<b>" + "z" * 5000
    c = _customer(name="N" * 200, company=long)
    deals = [
        Deal(id=i, customer_id=7, title=long[:200], stage="lead", amount=Decimal("1"))
        for i in range(40)
    ]
    card = _card(c, None, deals, text=long, note=long[:2000])
    out = blocks.customer_card(card, None, tz="Europe/Berlin", scored=False)
    assert len(out["blocks"]) <= blocks.MAX_MESSAGE_BLOCKS
    text = str(out["blocks"])
    assert "<b>" not in text and "&lt;b&gt;" in text
    assert "and 30 more" in text


def test_options_are_capped_and_labels_shortened():
    many = [blocks.customer_option(_customer(id=i, name="Q" * 100)) for i in range(150)]
    out = blocks.options(many)
    assert len(out["options"]) == 100
    assert all(len(o["text"]["text"]) <= 75 for o in out["options"])


def test_home_view_with_many_items_fits_in_100_blocks():
    user = User(id=1, name="Rita", timezone="Europe/Berlin")
    deals = [
        Deal(id=i, customer_id=1, title=f"D{i}", stage="lead", amount=Decimal("5"))
        for i in range(60)
    ]
    follow_ups = [
        FollowUp(id=i, customer_id=1, due_at=utcnow() - timedelta(days=1)) for i in range(30)
    ]
    view = blocks.home_view(
        user=user,
        follow_ups=follow_ups,
        follow_up_names={1: "Acme"},
        deals=deals,
        deal_names={1: "Acme"},
        rotting={},
        at_risk_rows=[],
        scored=False,
        stages=["lead", "qualified", "won", "lost"],
    )
    assert view["type"] == "home" and len(view["blocks"]) <= blocks.MAX_VIEW_BLOCKS
    assert "and more" in str(view["blocks"])


def test_help_has_every_verb_and_each_text_fits():
    out = blocks.help_message(VERBS)
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in out["blocks"])
    assert str(out["blocks"]).count("/crm ") >= 2 * len(VERBS)


def test_parsing_customer_references_and_times():
    assert split_customer('"Acme Corp" hello there') == ("Acme Corp", "hello there")
    assert split_customer("Acme Corp: hello there") == ("Acme Corp", "hello there")
    assert split_customer("acme.com hello") == ("acme.com", "hello")
    assert split_customer("acme called at 10:30") == ("acme", "called at 10:30")
    assert split_when("tomorrow 9am send the quote", "UTC") == ("tomorrow 9am", "send the quote")
    assert split_when("next friday: review", "UTC") == ("next friday", "review")
    assert split_when("in 3 days", "UTC") == ("in 3 days", "")


def _every_kind_of_payload() -> list[object]:
    c = _customer(domain="acme.example", company="Acme & Co <x>")
    deals = [
        Deal(id=i, customer_id=7, title=f"D{i}", stage="lead", amount=Decimal("5"))
        for i in range(3)
    ]
    card = _card(c, User(id=1, name="Rita"), deals, text="hi", note="call")
    from crm.services.customers import CustomerMatch

    return [
        blocks.customer_card(card, None, tz="Europe/Berlin", scored=False),
        blocks.customer_matches(
            [CustomerMatch(c, 90.0, "fuzzy")] * 12, "acme", offset=0, has_more=True
        ),
        blocks.deal_new_modal(stages=["lead", "won"], currency="EUR", customer=c),
        blocks.log_note_modal(c),
        blocks.follow_up_modal(c),
        blocks.log_message_modal(
            meta={"channel": "C1", "ts": "1.2"}, preview="a message", in_thread=True
        ),
        blocks.options([blocks.customer_option(c), blocks.deal_option(deals[0])]),
        blocks.help_message(VERBS),
        blocks.home_view(
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
    monkeypatch.setattr(JsonObject, "get_non_null_attributes", blocks._slack_non_null_attributes)
    theirs = _every_kind_of_payload()
    assert ours == theirs
    assert any(isinstance(p, dict) and p.get("type") == "modal" for p in ours)
