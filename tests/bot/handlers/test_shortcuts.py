"""The "Log to CRM" message shortcut and its form: a message or a whole thread stored once."""

from __future__ import annotations

import json
import time

from sqlmodel import select

from crm.models import (
    Interaction,
)
from tests.bot.slack.harness import blocks_text
from tests.factories import add_customer, add_deal


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
    assert "Logged 2 messages" in fake_slack.wait_for("chat.postMessage")[0].params["text"]
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
    assert done["channel"] == "D_UREP00001" and "Logged 30 messages" in done["text"]
    assert len(fake_slack.calls_to("chat.getPermalink")) == 1
    with db.session() as session:
        rows = list(session.exec(select(Interaction).order_by(Interaction.occurred_at)))
    assert [r.body for r in rows] == [f"message {n}" for n in range(30)]
    base = "https://home.example/archives/C0ACME001/p"
    assert all(r.meta["permalink"].startswith(base) for r in rows)
