"""The App Home tab, over real HTTP."""

from __future__ import annotations

from datetime import timedelta

from crm.models import (
    AnalyticsRun,
    ChurnScore,
    Deal,
    utcnow,
)
from tests.bot.slack.harness import blocks_text
from tests.factories import add_customer, add_deal, add_follow_up


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
    f = add_follow_up(db, c.id, rita.id, days=-1, note="overdue call")
    add_follow_up(db, fresh.id, rita.id, days=30, note="far away")
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
    other = add_follow_up(db, c.id, people["UREP00002"].id)
    slack.block_action(
        {"action_id": "followup_done", "value": str(other.id)},
        user="UREP00001",
        view={"id": "V1", "type": "home"},
    )
    dm = fake_slack.wait_for("chat.postMessage")[-1].params
    assert dm["channel"] == "D_UREP00001" and "Only its owner" in dm["text"]


def test_a_customer_opened_from_a_digest_stays_on_top_while_the_tab_is_used(
    slack, db, admin, people, fake_slack
):
    import json
    import time

    rita = people["UREP00001"]
    c = add_customer(db, admin, name="Quiet Co", email="a@quiet.com", owner_id=rita.id)
    f = add_follow_up(db, c.id, rita.id, days=-1, note="overdue call")
    focused = {"focus": c.id, "until": int(time.time()) + 60}
    home = {"id": "V1", "type": "home", "private_metadata": json.dumps(focused)}
    done = {"action_id": "followup_done", "value": str(f.id)}
    slack.block_action(done, user="UREP00001", view=home)
    view = fake_slack.wait_for("views.publish")[-1].params["view"]
    assert view["blocks"][0]["text"]["text"] == "Quiet Co"  # the card, then the usual tab
    assert "overdue call" not in blocks_text(view["blocks"])
    # Once its time is up the tab is its usual self again.
    home["private_metadata"] = json.dumps({**focused, "until": int(time.time()) - 1})
    slack.event({"type": "app_home_opened", "user": "UREP00001", "tab": "home", "view": home})
    view = fake_slack.wait_for("views.publish", 2)[-1].params["view"]
    assert view["blocks"][0]["text"]["text"] == "Hi Rita Rep"
