"""Form submissions (new deal, note, follow-up): saved, or the mistake shown on the form."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from sqlmodel import select

from crm.models import (
    Deal,
    FollowUp,
    Interaction,
    utcnow,
)
from tests.factories import add_customer


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
        {
            "when": {"value": {"value": "in 3 days"}},
            "note": {"value": {"value": "check in"}},
            "kind": {"value": {"selected_option": {"value": "service"}}},
        },
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
    assert fu.kind == "service"


def test_a_deal_from_the_form_belongs_to_the_customers_owner(slack, db, admin, people):
    """The form, the CLI and imports share one rule: the customer's owner, else the opener."""
    owned = add_customer(
        db, admin, name="Owned", email="a@owned.com", owner_id=people["UREP00002"].id
    )
    unowned = add_customer(db, admin, name="Unowned", email="b@unowned.com")

    def values(customer_id: int, title: str) -> dict:
        return {
            "customer": {
                "customer_options": {
                    "type": "external_select",
                    "selected_option": {"value": str(customer_id)},
                }
            },
            "title": {"value": {"type": "plain_text_input", "value": title}},
            "amount": {"value": {"type": "plain_text_input", "value": "100"}},
            "currency": {"value": {"type": "plain_text_input", "value": ""}},
            "stage": {"value": {"type": "static_select", "selected_option": None}},
            "close": {"value": {"type": "datepicker", "selected_date": None}},
        }

    assert slack.submit("deal_new", values(owned.id, "For Ray"), user="UREP00001") == (200, "")
    assert slack.submit("deal_new", values(unowned.id, "Mine"), user="UREP00001") == (200, "")
    with db.session() as session:
        owners = {d.title: d.owner_id for d in session.exec(select(Deal))}
    assert owners == {"For Ray": people["UREP00002"].id, "Mine": people["UREP00001"].id}


def test_forget_asks_for_confirmation_then_erases_for_admins_only(slack, db, admin, fake_slack):
    from crm.models import AuditEvent, Customer
    from crm.services import audit as audit_svc

    c = add_customer(db, admin, name="Fay Forgetful", email="fay@forget.test", phone="+1 555 0199")
    assert "admins" in slack.command("forget fay@forget.test asked", user="UREP00001").text
    reply = slack.command("forget fay@forget.test asked by phone", wait=False)
    assert reply.status == 200
    view = fake_slack.wait_for("views.open")[0].params["view"]
    assert view["callback_id"] == "forget_customer"
    assert [b.get("block_id") for b in view["blocks"] if b["type"] == "input"] == [
        "reason",
        "confirm",
    ]
    reason_block = next(b for b in view["blocks"] if b.get("block_id") == "reason")
    assert reason_block["element"]["initial_value"] == "asked by phone"

    def values(confirm: str) -> dict:
        return {
            "reason": {"value": {"type": "plain_text_input", "value": "asked by phone"}},
            "confirm": {"value": {"type": "plain_text_input", "value": confirm}},
        }

    meta = view["private_metadata"]
    status, body = slack.submit("forget_customer", values("999"), private_metadata=meta)
    assert json.loads(body)["errors"] == {"confirm": f"Type {c.id} to confirm."}
    # A form carrying the id, submitted by someone who may not erase: refused, nothing written.
    status, body = slack.submit(
        "forget_customer", values(str(c.id)), private_metadata=meta, user="UREP00001"
    )
    assert "admins" in next(iter(json.loads(body)["errors"].values()))
    with db.session() as session:
        assert session.get(Customer, c.id) is not None
    status, body = slack.submit("forget_customer", values(str(c.id)), private_metadata=meta)
    assert status == 200 and body == ""
    confirm = fake_slack.wait_for("chat.postMessage")[-1].params
    assert "Erased customer" in confirm["text"]
    with db.session() as session:
        assert session.get(Customer, c.id) is None
        tomb = session.exec(select(AuditEvent).where(AuditEvent.action == "forget")).one()
        assert tomb.actor.startswith("slack:UADMIN001") and tomb.after["reason"] == "asked by phone"
        assert audit_svc.verify_chain(session).ok
