"""Buttons and menus on cards, lists and the Home tab, over real signed HTTP."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from crm.models import (
    AuditEvent,
    Deal,
    FollowUp,
    FollowUpStatus,
    utcnow,
)
from tests.factories import add_customer, add_deal, add_follow_up


def test_follow_up_buttons_done_and_snooze_with_permissions(slack, db, admin, people):
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    f = add_follow_up(db, c.id, people["UREP00001"].id)
    denied = slack.block_action(
        {"action_id": "followup_done", "value": str(f.id)}, user="UREP00002"
    )
    assert "Only its owner" in denied.text
    snoozed = slack.block_action(
        {"action_id": "followup_snooze_day", "value": str(f.id)}, user="UREP00001"
    )
    assert "snoozed to" in snoozed.text
    with db.session() as session:
        after_day = session.get(FollowUp, f.id)
    assert after_day.status == FollowUpStatus.snoozed and after_day.due_at > utcnow() + timedelta(
        hours=23
    )
    slack.block_action({"action_id": "followup_snooze_week", "value": str(f.id)}, user="UMGR00001")
    with db.session() as session:
        assert session.get(FollowUp, f.id).due_at > after_day.due_at + timedelta(days=6)
    done = slack.block_action({"action_id": "followup_done", "value": str(f.id)}, user="UREP00001")
    assert "is done" in done.text
    again = slack.block_action({"action_id": "followup_done", "value": str(f.id)}, user="UREP00001")
    assert "is done" in again.text  # a second click changes nothing
    with db.session() as session:
        assert session.get(FollowUp, f.id).status == FollowUpStatus.done
        actions = [
            e.action
            for e in session.exec(select(AuditEvent).where(AuditEvent.entity == "follow_up"))
        ]
    assert actions == ["snooze", "snooze", "complete"]
    broken = slack.block_action({"action_id": "followup_done", "value": "nope"})
    assert "no valid id" in broken.text


def test_move_stage_menu(slack, db, admin, settings, people):
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    d = add_deal(db, admin, settings, c.id, owner_id=people["UREP00001"].id)
    menu = {
        "action_id": "deal_move_stage",
        "type": "static_select",
        "selected_option": {
            "value": f"{d.id}:proposal",
            "text": {"type": "plain_text", "text": "proposal"},
        },
    }
    assert "viewer" in slack.block_action(menu, user="UVIEW0001").text
    assert "Only its owner" in slack.block_action(menu, user="UREP00002").text
    assert "moved" in slack.block_action(menu, user="UREP00001").text
    lost = dict(menu, selected_option={"value": f"{d.id}:lost"})
    assert "needs a reason" in slack.block_action(lost, user="UREP00001").text
    with db.session() as session:
        assert session.get(Deal, d.id).stage == "proposal"


def test_card_buttons_open_forms_and_timeline(slack, db, admin, fake_slack):
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    for n, (action_id, callback) in enumerate(
        (
            ("card_log_note", "log_note"),
            ("card_new_deal", "deal_new"),
            ("card_follow_up", "follow_up"),
        ),
        start=1,
    ):
        slack.block_action({"action_id": action_id, "value": str(c.id)}, wait=False)
        view = fake_slack.wait_for("views.open", n)[-1].params["view"]
        assert view["callback_id"] == callback
    new_deal = fake_slack.calls_to("views.open")[1].params["view"]
    assert new_deal["blocks"][0]["element"]["initial_option"]["value"] == str(c.id)
    timeline = slack.block_action({"action_id": "card_timeline", "value": str(c.id)})
    assert "Timeline of #" in timeline.text
    viewer = slack.block_action(
        {"action_id": "card_log_note", "value": str(c.id)}, user="UVIEW0001"
    )
    assert "viewer" in viewer.text


def test_page_button_with_a_broken_value_answers_politely(slack):
    reply = slack.block_action({"action_id": "page", "value": "{not json"})
    assert "page button is broken" in reply.text
