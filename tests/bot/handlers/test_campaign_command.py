"""``/crm campaign report NAME`` over real signed HTTP."""

from __future__ import annotations

from crm.models import Channel, InteractionCreate
from crm.services import campaigns as svc
from crm.services import interactions as interaction_svc
from tests.factories import add_customer


def test_campaign_report_in_slack(slack, db, admin):
    ids = [
        add_customer(db, admin, name=f"Shop {i}", email=f"buyer@shop{i}.com").id for i in range(10)
    ]
    with db.transaction() as s:
        svc.create_campaign(
            s,
            name="spring offer",
            customer_ids=ids,
            audience={"filter": "status=lead"},
            subject="Hi",
            template="Hello",
            holdout=0.5,
            window_days=14,
            actor=admin,
            seed=3,
        )
        svc.start_sending(s, name="spring offer", actor=admin)
    with db.session() as s:
        treated = [r.customer_id for r in svc.pending_recipients(s, 1)]
    with db.transaction() as s:
        for cid in treated[:3]:
            interaction_svc.record_interaction(
                s,
                actor=admin,
                interaction_in=InteractionCreate(
                    customer_id=cid, channel=Channel.purchase, amount=50, currency="USD"
                ),
            )
    reply = slack.command("campaign report spring offer")
    assert "Campaign spring offer" in reply.text
    assert "*treatment*: 5 customers, 0 contacted, 3 responded (60.0%)" in reply.text
    assert "*control*: 5 customers, 0 contacted, 0 responded (0.0%)" in reply.text
    assert "+60.0 points, 95% CI" in reply.text
    missing = slack.command("campaign report autumn")
    assert "There is no campaign 'autumn'" in missing.text and "spring offer" in missing.text
    assert "report" in slack.command("campaign").text
