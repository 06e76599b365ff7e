"""Who may do what in Slack, verb by verb and role by role: one table, tested exhaustively.

Each verb (and each button or menu that changes something, carrying the id of a record) is
sent by an admin, a manager, the rep who owns the records, another rep and a
viewer. A refused request says so and changes nothing; an allowed one is not refused.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from bot.handlers.commands import HANDLERS
from crm.services import campaigns as campaign_svc
from crm.services import customers as customer_svc
from crm.services import slack_capture
from tests.factories import add_customer, add_deal

ADMIN, MANAGER, VIEWER = "UADMIN001", "UMGR00001", "UVIEW0001"
OWNER, OTHER_REP = "UREP00001", "UREP00002"
EVERYONE = {ADMIN, MANAGER, OWNER, OTHER_REP, VIEWER}
WRITERS = EVERYONE - {VIEWER}
MANAGERS = {ADMIN, MANAGER}

# verb -> (what is sent after /crm, who may); {deal} is the owner's deal.
ACCESS: dict[str, tuple[str, set[str]]] = {
    "help": ("help", EVERYONE),
    "find": ("find acme", EVERYONE),
    "show": ("show acme.com", EVERYONE),
    "deals": ("deals all", EVERYONE),
    "pipeline": ("pipeline", EVERYONE),
    "followups": ("followups", EVERYONE),
    "timeline": ("timeline acme.com", EVERYONE),
    "at-risk": ("at-risk", EVERYONE),
    "segments": ("segments", EVERYONE),
    "topics": ("topics", EVERYONE),
    "add": ('add "New Co" new@newco.com', WRITERS),
    "set": ("set acme.com company=Initrode", WRITERS),
    "log": ("log acme.com: called them", WRITERS),
    "followup": ("followup acme.com tomorrow 9am call", WRITERS),
    "deal": ("deal {deal} move proposal", MANAGERS | {OWNER}),
    "merge": ("merge acme.com initech.com", MANAGERS),
    "link": ("link <#C0ACME002|acme-new> acme.com", {ADMIN}),
    "unlink": ("unlink <#C0ACME001|acme-shared>", {ADMIN}),
    "role": ("role <@UREP00002|ray> rep", {ADMIN}),
    "forget": ("forget bob@initech.com asked by email", {ADMIN}),
    "duplicates": ("duplicates", EVERYONE),
    "unmerge": ("unmerge {merge}", MANAGERS),
    "campaign": ("campaign report spring", EVERYONE),
    "top": ("top 5", EVERYONE),
}
FORMS = {"forget"}  # allowed: a confirmation form opens instead of a reply
# Tables a request may touch without being a change: the caller's own user row, replay keys.
BOOKKEEPING = {"users", "seen_requests"}


def test_the_table_covers_every_verb():
    assert set(ACCESS) == set(HANDLERS)


def _everything(db) -> dict[str, list[tuple]]:
    rows = {}
    with db.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if table.name in BOOKKEEPING:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            rows[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*order))]
    return rows


def _refused(text: str) -> bool:
    return "Your role is viewer" in text or "Only " in text


@pytest.mark.parametrize("verb", sorted(ACCESS))
def test_each_role_may_do_what_the_table_says(verb, slack, fake_slack, db, admin, settings, people):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com", owner_id=people[OWNER].id)
    add_customer(db, admin, name="Initech", email="bob@initech.com")
    deal = add_deal(db, admin, settings, acme.id, owner_id=people[OWNER].id)
    twin = add_customer(db, admin, name="Acme Twin", email="twin@acme.com")
    with db.transaction() as session:
        slack_capture.link_channel(
            session, channel_id="C0ACME001", customer_id=acme.id, actor=admin
        )
        _, merge = customer_svc.merge_with_record(
            session, keep_id=acme.id, merge_id=twin.id, actor=admin
        )
        campaign_svc.create_campaign(
            session,
            name="spring",
            customer_ids=[acme.id],
            audience={"filter": "status=lead"},
            subject="Hi",
            template="Hello",
            holdout=0.5,
            window_days=14,
            actor=admin,
            seed=3,
        )
    text, allowed = ACCESS[verb]
    text = text.format(deal=deal.id, merge=merge.id)
    # The refusals first, each checked to change nothing; then the allowed.
    for user in sorted(EVERYONE - allowed):
        before = _everything(db)
        reply = slack.command(text, user=user)
        assert _refused(reply.text), (verb, user, reply.text)
        assert _everything(db) == before, (verb, user)
    for n, user in enumerate(sorted(allowed)):
        if verb in FORMS:
            opened = len(fake_slack.calls_to("views.open"))
            assert slack.command(text, user=user, wait=False).status == 200
            fake_slack.wait_for("views.open", count=opened + 1)
            continue
        reply = slack.command(text, user=user)
        assert not _refused(reply.text), (verb, user, reply.text)
        if n == 0:  # the first one finds the records as set up: it goes through
            assert ":warning:" not in reply.text, (verb, user, reply.text)


# Buttons and menus that change something, carrying the id of the owner's record.
# action id -> (the action payload, with {follow_up} / {deal}; who may).
BUTTONS: dict[str, tuple[dict, set[str]]] = {
    "followup_done": ({"value": "{follow_up}"}, MANAGERS | {OWNER}),
    "followup_snooze_day": ({"value": "{follow_up}"}, MANAGERS | {OWNER}),
    "followup_snooze_week": ({"value": "{follow_up}"}, MANAGERS | {OWNER}),
    "deal_move_stage": (
        {"type": "static_select", "selected_option": {"value": "{deal}:proposal"}},
        MANAGERS | {OWNER},
    ),
}


@pytest.mark.parametrize("action_id", sorted(BUTTONS))
def test_each_role_may_press_what_the_table_says(action_id, slack, db, admin, settings, people):
    import json

    from tests.factories import add_follow_up

    acme = add_customer(db, admin, name="Acme", email="jane@acme.com", owner_id=people[OWNER].id)
    deal = add_deal(db, admin, settings, acme.id, owner_id=people[OWNER].id)
    follow_up = add_follow_up(db, acme.id, people[OWNER].id)
    template, allowed = BUTTONS[action_id]
    payload = json.loads(
        json.dumps(template)
        .replace("{deal}", str(deal.id))
        .replace("{follow_up}", str(follow_up.id))
    )
    payload["action_id"] = action_id
    for user in sorted(EVERYONE - allowed):
        before = _everything(db)
        reply = slack.block_action(payload, user=user)
        assert _refused(reply.text), (action_id, user, reply.text)
        assert _everything(db) == before, (action_id, user)
    first = slack.block_action(payload, user=sorted(allowed)[0])
    assert not _refused(first.text) and ":warning:" not in first.text, (action_id, first.text)
