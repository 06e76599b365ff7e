"""`/crm duplicates`, its Merge and Not a duplicate buttons, and Undo merge, over signed HTTP."""

from __future__ import annotations

from sqlmodel import select

from crm.models import AuditEvent, Customer, CustomerMerge
from tests.factories import add_customer


def _buttons(reply):
    return [
        element
        for block in reply.respond.get("blocks") or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_duplicates_are_listed_merged_undone_and_dismissed(slack, db, admin):
    jane = add_customer(db, admin, "Jane Doe", "jane.doe@gmail.com", city="Leeds")
    twin = add_customer(db, admin, "Jane Doe", "janedoe@gmail.com", city="Leeds")
    bob = add_customer(db, admin, "Bob Stone", "bob@initech.com", street="1 Main St")
    bobby = add_customer(db, admin, "Bob Stone", "bstone@other.org", street="1 Main Street")
    listed = slack.command("duplicates", user="UREP00001")
    assert "same email" in listed.text and "Jane Doe" in listed.text and "Bob Stone" in listed.text
    buttons = {(b["action_id"], b["value"]) for b in _buttons(listed)}
    assert ("duplicate_merge", f"{jane.id}:{twin.id}") in buttons
    assert ("duplicate_dismiss", f"{bob.id}:{bobby.id}") in buttons

    refused = slack.block_action(
        {"action_id": "duplicate_merge", "value": f"{jane.id}:{twin.id}"}, user="UREP00001"
    )
    assert "manager" in refused.text.lower()
    done = slack.block_action(
        {"action_id": "duplicate_merge", "value": f"{jane.id}:{twin.id}"}, user="UMGR00001"
    )
    assert "Merged" in done.text
    with db.session() as session:
        merge = session.exec(select(CustomerMerge)).one()
        assert session.get(Customer, twin.id) is None
    assert ("merge_undo", str(merge.id)) in {(b["action_id"], b["value"]) for b in _buttons(done)}
    undone = slack.block_action(
        {"action_id": "merge_undo", "value": str(merge.id)}, user="UMGR00001"
    )
    assert "Undid merge" in undone.text
    again = slack.block_action(
        {"action_id": "merge_undo", "value": str(merge.id)}, user="UMGR00001"
    )
    assert "undone already" in again.text
    with db.session() as session:
        assert session.get(Customer, twin.id).name == "Jane Doe"

    dismissed = slack.block_action(
        {"action_id": "duplicate_dismiss", "value": f"{bob.id}:{bobby.id}"}, user="UREP00001"
    )
    assert "different customers" in dismissed.text
    relisted = slack.command("duplicates", user="UREP00001")
    assert "Bob Stone" not in relisted.text and "Jane Doe" in relisted.text
    with db.session() as session:
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("merge") == 1 and actions.count("unmerge") == 1
    assert actions.count("not_duplicate") == 1


def test_duplicates_with_a_bad_score_or_unmerge_without_a_number_answer_politely(slack):
    assert "not a score" in slack.command("duplicates lots").text
    assert "merge's number" in slack.command("unmerge jane").text
    assert "no merge #42" in slack.command("unmerge 42", user="UMGR00001").text.lower()


def test_set_changes_the_address_and_the_card_shows_it(slack, db, admin):
    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    reply = slack.command(
        f'set #{jane.id} street="1 High St" postcode=ls1 city=Leeds', user="UMGR00001"
    )
    assert "Updated" in reply.text
    card = slack.command(f"show #{jane.id}", user="UREP00001")
    assert "Address:* 1 High St, LS1 Leeds" in card.text
