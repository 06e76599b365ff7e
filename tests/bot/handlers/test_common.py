"""What every listener shares: a user who may not act is refused everywhere, and told why."""

from __future__ import annotations

import json

from sqlmodel import select

from crm.models import (
    Interaction,
)
from tests.bot.slack.harness import blocks_text
from tests.factories import add_customer


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
