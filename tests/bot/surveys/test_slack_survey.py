"""A survey in a customer's Slack Connect channel: five buttons only the customer's side answers."""

from __future__ import annotations

import json
from datetime import timedelta

from slack_sdk import WebClient
from sqlmodel import select

from bot.surveys import SurveySender
from crm.models import Channel, ChannelLink, Direction, Interaction, InteractionCreate, utcnow
from crm.services import interactions as interaction_svc
from tests.factories import add_customer


def test_linked_channel_gets_five_buttons_and_only_the_customer_side_answers_once(
    slack, db, admin, fake_slack, slack_settings
):
    c = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    now = utcnow()
    with db.transaction() as s:
        s.add(ChannelLink(channel_id="C0ACME001", customer_id=c.id, linked_by="test"))
        for direction, hours in ((Direction.inbound, 30), (Direction.outbound, 25)):
            interaction_svc.record_interaction(
                s,
                actor=admin,
                interaction_in=InteractionCreate(
                    customer_id=c.id,
                    channel=Channel.email,
                    direction=direction,
                    occurred_at=now - timedelta(hours=hours),
                    body="x",
                    thread_key="mail:t1@acme.com",
                ),
            )
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    sent = SurveySender(slack_settings, db, slack=client).tick()
    assert [s.status for s in sent] == ["sent"]
    [post] = fake_slack.calls_to("chat.postMessage")
    assert post.params["channel"] == "C0ACME001"
    blocks = post.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == [f"csat_rate_{r}" for r in range(1, 6)]
    five = buttons[4]
    # One of our own people clicking is refused, and nothing is recorded.
    refused = slack.block_action({"action_id": five["action_id"], "value": five["value"]})
    assert "Only the customer" in refused.text

    def click(button, key):
        payload = {
            "type": "block_actions",
            "team": {"id": fake_slack.team_id},
            "user": {"id": "UEXT00001", "team_id": "TCUST0001"},
            "api_app_id": "A1",
            "trigger_id": f"trigger-{key}",
            "actions": [{"action_id": button["action_id"], "value": button["value"]}],
            "container": {"type": "message"},
            "channel": {"id": "C0ACME001"},
            "response_url": fake_slack.response_url(key),
        }
        assert slack.interactive(payload)[0] == 200
        return json.dumps(slack.wait_respond(key))

    def ratings():
        with db.session() as s:
            return [
                i.meta["csat"]
                for i in s.exec(select(Interaction).where(Interaction.source == "csat"))
            ]

    assert ratings() == []
    assert "rating (5/5) is recorded" in click(five, "ext1")
    assert "answered already" in click(buttons[0], "ext2")  # the survey is answered once
    tampered = dict(
        five, value=five["value"][:-2] + ("AA" if not five["value"].endswith("AA") else "BB")
    )
    assert "not valid" in click(tampered, "ext3")
    assert ratings() == [5]
