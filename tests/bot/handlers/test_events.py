"""Linked-channel capture from real event callbacks: threads, edits, deletions, skips, retries."""

from __future__ import annotations

from sqlmodel import select

from crm.models import Direction, Interaction
from crm.services import slack_capture
from tests.factories import add_customer

CHANNEL = "C0ACME001"


def _link(db, admin, customer_id):
    with db.transaction() as session:
        slack_capture.link_channel(
            session, channel_id=CHANNEL, customer_id=customer_id, actor=admin
        )


def _rows(db):
    with db.session() as session:
        return {i.external_id: i for i in session.exec(select(Interaction))}


def _message(ts, text, user="UREP00001", **extra):
    return {"type": "message", "channel": CHANNEL, "user": user, "ts": ts, "text": text, **extra}


def test_linked_channel_messages_threads_edits_and_deletions(slack_sync, db, admin, fake_slack):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com")
    _link(db, admin, acme.id)
    root = _message("1700000000.000100", "Hi from Acme <3", user="UEXT00001", team="TACME0001")
    assert slack_sync.event(root, event_id="Ev1")[0] == 200
    reply = _message("1700000050.000200", "Welcome!", thread_ts=root["ts"])
    assert slack_sync.event(reply, event_id="Ev2")[0] == 200
    # Slack re-sends an event it thinks timed out: the same message must not be stored twice.
    assert slack_sync.event(root, event_id="Ev1", retry=1)[0] == 200
    assert slack_sync.event(root, event_id="Ev1", retry=2)[0] == 200
    rows = _rows(db)
    assert set(rows) == {f"{CHANNEL}:{root['ts']}", f"{CHANNEL}:{reply['ts']}"}
    first, second = rows[f"{CHANNEL}:{root['ts']}"], rows[f"{CHANNEL}:{reply['ts']}"]
    assert first.body == "Hi from Acme <3" and first.direction == Direction.inbound
    assert first.author == "joe@acme.com" and first.meta["contact"] == "joe@acme.com"
    assert second.direction == Direction.outbound and second.author == "rita@ourco.com"
    assert first.thread_key == second.thread_key == f"{CHANNEL}:{root['ts']}"
    assert first.source == second.source == f"slack:{fake_slack.team_id}"

    edit = {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "ts": "1700000099.0",
        "message": {**root, "text": "Hi from Acme (edited)"},
        "previous_message": root,
    }
    assert slack_sync.event(edit, event_id="Ev3")[0] == 200
    delete = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "ts": "1700000100.0",
        "deleted_ts": reply["ts"],
        "previous_message": reply,
    }
    assert slack_sync.event(delete, event_id="Ev4")[0] == 200
    rows = _rows(db)
    assert rows[f"{CHANNEL}:{root['ts']}"].body == "Hi from Acme (edited)"
    assert rows[f"{CHANNEL}:{reply['ts']}"].deleted_at is not None
    timeline = slack_sync.command(f"timeline #{acme.id}")
    assert "Hi from Acme (edited)" in timeline.text and "Welcome!" not in timeline.text


def test_skips_bots_joins_unlinked_channels_and_keeps_files_by_name(
    slack_sync, db, admin, fake_slack
):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com")
    _link(db, admin, acme.id)
    events = [
        _message("1700000001.0", "beep", bot_id="B1", subtype="bot_message"),
        _message("1700000002.0", "<@UREP00001> has joined the channel", subtype="channel_join"),
        _message("1700000003.0", "left", subtype="channel_leave"),
        {**_message("1700000004.0", "elsewhere"), "channel": "C0OTHER01"},
    ]
    for n, event in enumerate(events):
        assert slack_sync.event(event, event_id=f"EvS{n}")[0] == 200
    with_file = _message(
        "1700000005.0",
        "",
        subtype="file_share",
        files=[
            {
                "id": "F1",
                "name": "contract.pdf",
                "permalink": "https://home.example/files/F1",
                "url_private": "https://files.example/secret",
            }
        ],
    )
    assert slack_sync.event(with_file, event_id="EvF")[0] == 200
    rows = _rows(db)
    assert list(rows) == [f"{CHANNEL}:1700000005.0"]
    stored = rows[f"{CHANNEL}:1700000005.0"]
    assert stored.meta["files"] == [
        {"name": "contract.pdf", "url": "https://home.example/files/F1"}
    ]
    assert "secret" not in str(stored.meta)
    # users.info is asked only about authors of captured messages, once each.
    assert [c.params["user"] for c in fake_slack.calls_to("users.info")] == ["UREP00001"]


def test_edits_and_deletions_of_uncaptured_messages_are_ignored(slack_sync, db, admin):
    acme = add_customer(db, admin, name="Acme", email="jane@acme.com")
    _link(db, admin, acme.id)
    edit = {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "ts": "1.0",
        "message": _message("1699999999.0", "never seen"),
        "previous_message": _message("1699999999.0", "x"),
    }
    assert slack_sync.event(edit, event_id="EvE")[0] == 200
    assert (
        slack_sync.event(
            {
                "type": "message",
                "subtype": "message_deleted",
                "channel": CHANNEL,
                "deleted_ts": "1699999998.0",
            },
            event_id="EvD",
        )[0]
        == 200
    )
    assert _rows(db) == {}
