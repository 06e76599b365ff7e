"""Buttons, menus, forms, the message shortcut, type-ahead options and App Home, over real HTTP."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

from sqlmodel import select

from crm.models import (
    AnalyticsRun,
    AuditEvent,
    ChurnScore,
    Deal,
    FollowUp,
    FollowUpStatus,
    Interaction,
    utcnow,
)
from tests.bot.slack.conftest import blocks_text
from tests.factories import add_customer, add_deal


def _follow_up(db, customer_id, owner_id, days=-1, note="call back"):
    with db.transaction() as session:
        f = FollowUp(
            customer_id=customer_id,
            owner_id=owner_id,
            due_at=utcnow() + timedelta(days=days),
            note=note,
        )
        session.add(f)
        session.flush()
        return f


def test_follow_up_buttons_done_and_snooze_with_permissions(slack, db, admin, people):
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    f = _follow_up(db, c.id, people["UREP00001"].id)
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


def test_deal_form_submission_saves_or_shows_errors(slack, db, admin, fake_slack):
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")

    def values(customer=str(c.id), title="Big one", amount="2500", stage="qualified"):
        return {
            "customer": {
                "customer_options": {
                    "type": "external_select",
                    "selected_option": {"value": customer} if customer else None,
                }
            },
            "title": {"value": {"type": "plain_text_input", "value": title}},
            "amount": {"value": {"type": "plain_text_input", "value": amount}},
            "currency": {"value": {"type": "plain_text_input", "value": "eur"}},
            "stage": {"value": {"type": "static_select", "selected_option": {"value": stage}}},
            "close": {"value": {"type": "datepicker", "selected_date": "2027-01-31"}},
        }

    status, body = slack.submit("deal_new", values(amount="lots"))
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    assert "amount" in json.loads(body)["errors"]
    status, body = slack.submit("deal_new", values(customer=None))
    assert json.loads(body)["errors"] == {"customer": "Choose a customer."}
    status, body = slack.submit("deal_new", values(), user="UVIEW0001")
    assert "viewer" in next(iter(json.loads(body)["errors"].values()))
    status, body = slack.submit("deal_new", values())
    assert status == 200 and body == ""
    with db.session() as session:
        deal = session.exec(select(Deal)).one()
    assert (deal.title, deal.amount, deal.currency, deal.stage) == (
        "Big one",
        Decimal("2500.00"),
        "EUR",
        "qualified",
    )
    assert str(deal.expected_close_date) == "2027-01-31"
    confirm = fake_slack.wait_for("chat.postMessage")[-1].params
    assert confirm["channel"] == "D_UADMIN001" and "opened" in confirm["text"]
    assert fake_slack.calls_to("conversations.open")[-1].params["users"] == "UADMIN001"


def test_note_and_follow_up_forms(slack, db, admin, fake_slack):
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    meta = json.dumps({"customer_id": c.id})
    status, body = slack.submit(
        "log_note",
        {
            "kind": {"value": {"selected_option": {"value": "call"}}},
            "text": {"value": {"value": "Discussed <pricing>"}},
        },
        private_metadata=meta,
        user="UREP00001",
    )
    assert status == 200 and body == ""
    empty = slack.submit(
        "log_note",
        {
            "kind": {"value": {"selected_option": {"value": "note"}}},
            "text": {"value": {"value": "  "}},
        },
        private_metadata=meta,
    )
    assert json.loads(empty[1])["errors"] == {"text": "Write what happened."}
    status, body = slack.submit(
        "follow_up",
        {"when": {"value": {"value": "whenever works"}}, "note": {"value": {"value": ""}}},
        private_metadata=meta,
    )
    assert "when" in json.loads(body)["errors"], body
    status, body = slack.submit(
        "follow_up",
        {"when": {"value": {"value": "in 3 days"}}, "note": {"value": {"value": "check in"}}},
        private_metadata=meta,
        user="UREP00001",
    )
    assert body == ""
    damaged = slack.submit(
        "follow_up", {"when": {"value": {"value": "in 3 days"}}}, private_metadata="{broken"
    )
    assert "damaged" in json.loads(damaged[1])["errors"]["when"]
    with db.session() as session:
        note = session.exec(select(Interaction)).one()
        fu = session.exec(select(FollowUp)).one()
    assert note.channel == "call" and note.body == "Discussed <pricing>"
    assert fu.note == "check in" and fu.due_at > utcnow() + timedelta(days=2)


def test_log_to_crm_shortcut_stores_message_or_thread_once(slack, db, admin, settings, fake_slack):
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    d = add_deal(db, admin, settings, c.id)
    root = {
        "type": "message",
        "user": "UEXT00001",
        "ts": "1700000100.000100",
        "text": "Can we get a discount?",
        "thread_ts": "1700000100.000100",
        "reply_count": 1,
    }
    reply = {
        "type": "message",
        "user": "UREP00001",
        "ts": "1700000200.000200",
        "text": "Let me check",
        "thread_ts": "1700000100.000100",
    }
    fake_slack.threads[("C0ACME001", root["ts"])] = [root, reply]
    status, _ = slack.interactive(
        {
            "type": "message_action",
            "callback_id": "log_to_crm",
            "trigger_id": "trig-1",
            "team": {"id": fake_slack.team_id},
            "user": {"id": "UREP00001"},
            "channel": {"id": "C0ACME001"},
            "message": root,
            "response_url": fake_slack.response_url("sc1"),
        }
    )
    assert status == 200
    view = fake_slack.wait_for("views.open")[0].params["view"]
    assert view["callback_id"] == "log_message" and "Can we get a discount?" in blocks_text(
        view["blocks"]
    )
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == [
        "customer",
        "deal",
        "thread",
    ]

    # Type-ahead: customers by what is typed; deals of the customer chosen above.
    status, found = slack.options("customer_options", "acme")
    assert status == 200 and found["options"][0]["value"] == str(c.id)
    state = {
        "values": {"customer": {"customer_options": {"selected_option": {"value": str(c.id)}}}}
    }
    status, deals = slack.options(
        "deal_options", "", view={"id": "V1", "type": "modal", "state": state}
    )
    assert [o["value"] for o in deals["options"]] == [str(d.id)]
    assert slack.options("deal_options", "")[1] == {"options": []}

    values = {
        "customer": {"customer_options": {"selected_option": {"value": str(c.id)}}},
        "deal": {"deal_options": {"selected_option": {"value": str(d.id)}}},
        "thread": {"value": {"selected_options": [{"value": "thread"}]}},
    }
    status, body = slack.submit(
        "log_message", values, private_metadata=view["private_metadata"], user="UREP00001"
    )
    assert status == 200 and body == ""
    assert "Logged 2 message(s)" in fake_slack.wait_for("chat.postMessage")[0].params["text"]
    status, body = slack.submit(
        "log_message", values, private_metadata=view["private_metadata"], user="UREP00001"
    )
    assert body == ""
    assert "were logged already" in fake_slack.wait_for("chat.postMessage", 2)[-1].params["text"]
    with db.session() as session:
        rows = list(session.exec(select(Interaction).order_by(Interaction.occurred_at)))
    assert len(rows) == 2  # logged twice, stored once
    assert rows[0].direction == "inbound" and rows[0].author == "joe@acme.com"
    assert rows[0].meta["contact"] == "joe@acme.com"
    assert rows[0].meta["permalink"].endswith("/C0ACME001/p1700000100000100")
    # One chat.getPermalink per logging, not per message: the reply's link follows the root's.
    assert len(fake_slack.calls_to("chat.getPermalink")) == 2
    assert rows[1].meta["permalink"] == (
        "https://home.example/archives/C0ACME001/p1700000200000200"
        "?thread_ts=1700000100.000100&cid=C0ACME001"
    )
    assert rows[1].direction == "outbound" and rows[0].thread_key == rows[1].thread_key
    assert all(r.deal_id == d.id for r in rows)
    assert (
        rows[0].source == f"slack:{fake_slack.team_id}"
        and rows[0].external_id == "C0ACME001:1700000100.000100"
    )

    # Slack's answer comes after the form has closed: a failure is told in the DM.
    gone = dict(values, thread={"value": {"selected_options": []}})
    meta = json.dumps(
        {"channel": "C0ACME001", "ts": "1700009999.1", "thread_ts": None, "team": "THOME0001"}
    )
    status, body = slack.submit("log_message", gone, private_metadata=meta)
    assert status == 200 and body == ""
    failed = fake_slack.wait_for("chat.postMessage", 3)[-1].params
    assert failed["channel"] == "D_UADMIN001"
    assert "Nothing was logged" in failed["text"] and "thread_not_found" in failed["text"]
    # Mistakes in the form itself still show on the form, before Slack is asked anything.
    fake_slack.reset()
    other = add_customer(db, admin, name="Other", email="x@other.com")
    status, body = slack.submit(
        "log_message",
        dict(values, customer={"customer_options": {"selected_option": {"value": str(other.id)}}}),
        private_metadata=view["private_metadata"],
    )
    assert "belongs to customer" in json.loads(body)["errors"]["deal"]
    status, body = slack.submit(
        "log_message",
        dict(values, customer={"customer_options": {"selected_option": {"value": "99999"}}}),
        private_metadata=view["private_metadata"],
    )
    assert "customer" in json.loads(body)["errors"]
    status, body = slack.submit("log_message", values, private_metadata="{}")
    assert "lost track" in json.loads(body)["errors"]["customer"]
    assert fake_slack.calls_to("conversations.replies") == []


def test_log_to_crm_answers_slack_before_reading_a_slow_thread(slack, db, admin, fake_slack):
    """Slack waits 3 s for the form's answer; a long thread takes longer to read than that."""
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    root_ts = "1700000100.000100"
    thread = [
        {
            "type": "message",
            "user": "UEXT00001" if n % 2 else "UREP00001",
            "ts": f"{1700000100 + n}.000100",
            "text": f"message {n}",
            "thread_ts": root_ts,
        }
        for n in range(30)
    ]
    fake_slack.threads[("C0ACME001", root_ts)] = thread
    delay = 1.5
    fake_slack.delays = {"conversations.replies": delay, "chat.getPermalink": delay}
    meta = json.dumps(
        {"channel": "C0ACME001", "ts": root_ts, "thread_ts": root_ts, "team": "THOME0001"}
    )
    values = {
        "customer": {"customer_options": {"selected_option": {"value": str(c.id)}}},
        "deal": {"deal_options": {"selected_option": None}},
        "thread": {"value": {"selected_options": [{"value": "thread"}]}},
    }
    started = time.monotonic()
    status, body = slack.submit("log_message", values, private_metadata=meta, user="UREP00001")
    answered = time.monotonic()
    assert status == 200 and body == ""
    assert answered - started < delay, f"the form's answer took {answered - started:.2f}s"
    # The answer went out before Slack had returned the thread.
    replies = fake_slack.wait_for("conversations.replies")
    assert all(c.answered_at is None or c.answered_at > answered for c in replies)

    done = fake_slack.wait_for("chat.postMessage", timeout=20)[0].params
    assert done["channel"] == "D_UREP00001" and "Logged 30 message(s)" in done["text"]
    assert len(fake_slack.calls_to("chat.getPermalink")) == 1
    with db.session() as session:
        rows = list(session.exec(select(Interaction).order_by(Interaction.occurred_at)))
    assert [r.body for r in rows] == [f"message {n}" for n in range(30)]
    base = "https://home.example/archives/C0ACME001/p"
    assert all(r.meta["permalink"].startswith(base) for r in rows)


def test_customer_options_are_capped_at_100(slack, db, admin):
    with db.transaction() as session:
        from crm.models import Customer
        from crm.services.normalise import name_key

        for i in range(130):
            session.add(Customer(name=f"Vandelay {i}", name_key=name_key(f"Vandelay {i}")))
    status, found = slack.options("customer_options", "vandelay")
    assert status == 200 and 0 < len(found["options"]) <= 100
    assert slack.options("customer_options", "")[1] == {"options": []}


def test_app_home_shows_due_follow_ups_rotting_deals_and_risk(
    slack, db, admin, settings, people, fake_slack
):
    rita = people["UREP00001"]
    c = add_customer(db, admin, name="Quiet Co", email="a@quiet.com", owner_id=rita.id)
    fresh = add_customer(db, admin, name="Fresh Co", email="a@fresh.com", owner_id=rita.id)
    old = add_deal(db, admin, settings, c.id, title="Stale deal", owner_id=rita.id)
    add_deal(db, admin, settings, fresh.id, title="New deal", owner_id=rita.id)
    with db.transaction() as session:
        stale = session.get(Deal, old.id)
        stale.stage_entered_at = utcnow() - timedelta(days=40)
        session.add(stale)
    f = _follow_up(db, c.id, rita.id, days=-1, note="overdue call")
    _follow_up(db, fresh.id, rita.id, days=30, note="far away")
    status, _ = slack.event(
        {"type": "app_home_opened", "user": "UREP00001", "channel": "D1", "tab": "home"}
    )
    assert status == 200
    home = fake_slack.wait_for("views.publish")[0].params
    assert home["user_id"] == "UREP00001" and home["view"]["type"] == "home"
    text = blocks_text(home["view"]["blocks"])
    assert "overdue call" in text and "far away" not in text
    assert ":warning: #" in text and "Stale deal" in text and "(1 rotting)" in text
    assert "no activity for 40 days in lead (the stage allows 14)" in text
    assert "New deal" in text and text.count(":warning:") == 1
    assert "Nothing is scored yet" in text

    with db.transaction() as session:
        run = AnalyticsRun(status="done", cutoff=utcnow(), finished_at=utcnow())
        session.add(run)
        session.flush()
        session.add(
            ChurnScore(
                run_id=run.id,
                customer_id=c.id,
                probability=0.9,
                risk_level="high",
                reasons=["Quiet for 90 days"],
            )
        )
    # A button on Home acts, then Home is published again with the change.
    slack.block_action(
        {"action_id": "followup_done", "value": str(f.id)},
        user="UREP00001",
        view={"id": "V1", "type": "home"},
    )
    again = fake_slack.wait_for("views.publish", 2)[-1].params
    text = blocks_text(again["view"]["blocks"])
    assert "overdue call" not in text and "Quiet for 90 days" in text and "90%" in text
    # A refused click on Home is explained in the app's DM.
    other = _follow_up(db, c.id, people["UREP00002"].id)
    slack.block_action(
        {"action_id": "followup_done", "value": str(other.id)},
        user="UREP00001",
        view={"id": "V1", "type": "home"},
    )
    dm = fake_slack.wait_for("chat.postMessage")[-1].params
    assert dm["channel"] == "D_UREP00001" and "Only its owner" in dm["text"]


def test_page_button_with_a_broken_value_answers_politely(slack):
    reply = slack.block_action({"action_id": "page", "value": "{not json"})
    assert "page button is broken" in reply.text


def test_a_deactivated_user_can_do_nothing_and_is_told_why(
    slack, db, admin, people, settings, fake_slack
):
    from crm.services import users as user_svc
    from crm.services.actor import Actor

    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    assert "Acme" in slack.command("show acme.com", user="UREP00001").text  # a reader now
    with db.transaction() as session:
        user_svc.set_active(
            session, user_id=people["UREP00001"].id, active=False, actor=Actor.system("t")
        )
    # A change is refused at once; a read at the latest once the reader cache lets go.
    assert "deactivated" in slack.command("log acme.com hi", user="UREP00001").text
    from bot.handlers import common

    common.forget_readers()
    assert "deactivated" in slack.command("show acme.com", user="UREP00001").text
    status, body = slack.submit(
        "log_note",
        {"text": {"value": {"type": "plain_text_input", "value": "hello"}}},
        user="UREP00001",
        private_metadata=json.dumps({"customer_id": c.id}),
    )
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "update"
    assert "deactivated" in blocks_text(answer["view"]["blocks"])
    status, _ = slack.event(
        {"type": "app_home_opened", "user": "UREP00001", "channel": "D1", "tab": "home"}
    )
    home = fake_slack.wait_for("views.publish")[0].params
    assert status == 200 and "deactivated" in blocks_text(home["view"]["blocks"])
    with db.session() as session:
        assert session.exec(select(Interaction)).all() == []
