"""The transport: signatures, malformed requests, health, Slack API retries, runtime start-up."""

from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlencode, urlsplit

import pytest
from sqlmodel import select

from bot.runtime import Disabled, Runtime
from bot.slack.runtime import SlackHTTPComponent, SlackSocketModeComponent, slack_component
from crm.models import Customer, Deal
from tests.bot.slack.fake_socket import FakeSocketMode
from tests.bot.slack.harness import SlackClientSim
from tests.factories import add_customer


def _command_form(fake, text="add Bob bob@bob.com"):
    return urlencode(
        {
            "command": "/crm",
            "text": text,
            "user_id": "UADMIN001",
            "team_id": fake.team_id,
            "channel_id": "C0GEN0001",
            "response_url": fake.response_url("x"),
            "trigger_id": "t",
        }
    )


def _customers(db) -> int:
    with db.session() as session:
        return len(list(session.exec(select(Customer))))


def test_bad_signature_and_stale_timestamp_are_rejected(slack, db, fake_slack):
    form = _command_form(fake_slack)
    status, _ = slack.post(
        form,
        "application/x-www-form-urlencoded",
        sign=False,
        headers={"X-Slack-Signature": "v0=" + "0" * 64},
    )
    assert status == 401
    status, _ = slack.post(form, "application/x-www-form-urlencoded", sign=False)
    assert status == 401
    stale = int(time.time()) - 60 * 10
    status, _ = slack.post(form, "application/x-www-form-urlencoded", timestamp=stale)
    assert status == 401
    forged = SlackClientSim(slack.base_url, fake_slack, secret="not-the-secret")
    assert forged.post(form, "application/x-www-form-urlencoded")[0] == 401
    time.sleep(0.2)
    assert _customers(db) == 0 and fake_slack.calls_to("respond") == []


def test_malformed_payloads_get_400_and_the_server_keeps_serving(slack, fake_slack):
    ct_form, ct_json = "application/x-www-form-urlencoded", "application/json"
    assert slack.post("payload=%7Bnot-json", ct_form)[0] == 400
    assert slack.post("{not json", ct_json)[0] == 400
    assert slack.post("", ct_json)[0] == 400
    assert slack.post("[1, 2]", ct_json)[0] in (400, 404)
    assert slack.post(urlencode({"payload": json.dumps({"type": "block_actions"})}), ct_form)[
        0
    ] in (400, 404)
    assert slack.post(
        urlencode({"payload": json.dumps({"type": "view_submission", "view": {}})}), ct_form
    )[0] in (400, 404)
    # Still alive and answering properly.
    assert "/crm find" in slack.command("help").text


def test_health_url_verification_and_unknown_paths(slack):
    parts = urlsplit(slack.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"ok\n")
    conn.request("GET", "/nope")
    response = conn.getresponse()
    response.read()
    assert response.status == 404
    conn.close()
    status, body = slack.post(
        json.dumps({"type": "url_verification", "challenge": "abc123", "token": "t"}),
        "application/json",
    )
    assert status == 200 and "abc123" in body
    assert slack.post("x=1", "application/x-www-form-urlencoded", path="/other")[0] == 404


def test_rate_limits_and_server_errors_from_slack_are_retried(slack, fake_slack, db, admin):
    add_customer(db, admin, name="Acme", email="jane@acme.com")
    fake_slack.failures["views.open"] = [(429, {"Retry-After": "0"}), (503, {})]
    slack.command("deal new", wait=False)
    opened = fake_slack.wait_for("views.open")
    assert len(opened) == 1
    assert [c.method for c in fake_slack.calls if c.method.startswith("views.open")] == [
        "views.open:failed",
        "views.open:failed",
        "views.open",
    ]


def test_a_failed_post_never_loses_the_change(slack, fake_slack, db, admin):
    c = add_customer(db, admin, name="Acme", email="jane@acme.com")
    fake_slack.failures["chat.postMessage"] = [(500, {})] * 10
    values = {
        "customer": {"customer_options": {"selected_option": {"value": str(c.id)}}},
        "title": {"value": {"value": "Kept anyway"}},
        "stage": {"value": {"selected_option": {"value": "lead"}}},
    }
    status, body = slack.submit("deal_new", values)
    assert status == 200 and body == ""
    fake_slack.wait_for("chat.postMessage:failed", 4)
    with db.session() as session:
        assert session.exec(select(Deal)).one().title == "Kept anyway"


def test_runtime_factory_says_why_slack_is_off(slack_settings, db):
    off = slack_component(slack_settings.model_copy(update={"slack_bot_token": None}), db)
    assert isinstance(off, Disabled) and "SLACK_BOT_TOKEN" in off.reason
    unsigned = slack_component(slack_settings.model_copy(update={"slack_signing_secret": None}), db)
    assert isinstance(unsigned, Disabled) and "SLACK_SIGNING_SECRET" in unsigned.reason


def test_runtime_rejected_token_is_reported(slack_settings, db, fake_slack):
    fake_slack.overrides["auth.test"] = lambda _p: {"ok": False, "error": "invalid_auth"}
    off = slack_component(slack_settings, db)
    assert isinstance(off, Disabled) and "invalid_auth" in off.reason


def test_runtime_serves_http_with_the_configured_api_url(slack_settings, db, fake_slack, people):
    runtime = Runtime(slack_settings, db, factories=[slack_component])
    runtime.start()
    try:
        assert runtime.disabled == []
        (component,) = runtime.components
        assert isinstance(component, SlackHTTPComponent)
        sim = SlackClientSim(component.url, fake_slack)
        assert "/crm find" in sim.command("help").text
        assert fake_slack.calls_to("auth.test")  # the token was checked against SLACK_API_URL
    finally:
        runtime.stop()


def test_socket_mode_starts_and_handles_a_command(slack_settings, db, fake_slack, people):
    ws = FakeSocketMode().start()
    fake_slack.socket_url = ws.url
    settings = slack_settings.model_copy(update={"slack_app_token": "xapp-test"})
    component = slack_component(settings, db)
    assert isinstance(component, SlackSocketModeComponent)
    component.start()
    try:
        assert ws.connected.wait(10)
        opened = fake_slack.wait_for("apps.connections.open")[0]
        assert opened.headers["authorization"] == "Bearer xapp-test"
        ws.send(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "command": "/crm",
                    "text": "help",
                    "user_id": "UADMIN001",
                    "team_id": fake_slack.team_id,
                    "channel_id": "C0GEN0001",
                    "response_url": fake_slack.response_url("sock"),
                    "trigger_id": "t1",
                },
            }
        )
        ack = ws.next_received()
        assert ack["envelope_id"] == "env-1"
        deadline = time.monotonic() + 10
        while not fake_slack.calls_to("respond") and time.monotonic() < deadline:
            time.sleep(0.02)
        (reply,) = fake_slack.calls_to("respond")
        assert reply.params["_key"] == "sock" and "/crm find" in reply.params["text"] + json.dumps(
            reply.params
        )
    finally:
        component.stop()
        ws.stop()


def test_several_http_worker_processes_share_the_listening_socket(
    slack_settings, db, fake_slack, people
):
    from concurrent.futures import ThreadPoolExecutor

    settings = slack_settings.model_copy(update={"http_workers": 2})
    component = slack_component(settings, db)
    assert isinstance(component, SlackHTTPComponent)
    component.start()
    worker = component._workers[0][0]
    try:
        sim = SlackClientSim(component.url, fake_slack)
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: sim.command("help"), range(12)))
        assert all("/crm find" in r.text for r in replies)
        assert len(component._workers) == 1 and worker.is_alive()
    finally:
        started = time.monotonic()
        component.stop()
    # Every process woke for every connection: the one that lost the race went back to
    # waiting instead of blocking in accept(), so it saw the stop and exited by itself.
    assert worker.exitcode == 0 and time.monotonic() - started < 5
    assert component._workers == []


def test_a_command_is_answered_at_ack_while_its_listener_goes_on(slack, fake_slack):
    """A first-time user costs a slow users.info after ack(): Slack's answer must not wait."""
    fake_slack.users["UNEW00001"] = {
        "id": "UNEW00001",
        "team_id": fake_slack.team_id,
        "tz": "UTC",
        "profile": {"real_name": "New Rep", "email": "new.rep@home.example"},
    }
    delay = 1.5
    fake_slack.delays = {"users.info": delay}
    started = time.monotonic()
    reply = slack.command("help", user="UNEW00001", wait=False)
    answered = time.monotonic() - started
    assert reply.status == 200 and answered < delay, f"answered after {answered:.2f}s"
    assert "/crm find" in json.dumps(slack.wait_respond("cmd1"))
    assert time.monotonic() - started >= delay


def test_a_listener_goes_on_when_slack_hung_up_before_its_answer():
    from slack_bolt import BoltResponse

    from bot.slack.app import AnswerOnAck

    def hung_up(_response: BoltResponse) -> None:
        raise BrokenPipeError("the peer closed the connection")

    ack = AnswerOnAck(hung_up)
    response = ack()  # must not raise into the listener, which still has the work to do
    assert response.status == 200 and ack.response is response


def _new_user(fake_slack, uid: str) -> None:
    fake_slack.users[uid] = {
        "id": uid,
        "team_id": fake_slack.team_id,
        "tz": "UTC",
        "profile": {"real_name": f"Rep {uid}", "email": f"{uid.lower()}@home.example"},
    }


@pytest.mark.parametrize(
    ("slots", "longest_wait", "one_after_the_other"),
    [(1, 30.0, True), (2, 30.0, False), (1, 0.2, False)],
)
def test_listeners_past_their_ack_take_turns_in_the_slots(
    db, slack_settings, fake_slack, monkeypatch, slots, longest_wait, one_after_the_other
):
    """Two first-time users, each costing a slow users.info after ack(): both are answered at
    once. With one slot their listeners run one after the other, with two side by side; and a
    listener waits for a slot no longer than SLOT_WAIT_SECONDS, then goes on without one."""
    from bot.slack import runtime as slack_runtime
    from tests.bot.slack.harness import served

    monkeypatch.setattr(slack_runtime, "SLOT_WAIT_SECONDS", longest_wait)
    delay = 1.0
    fake_slack.delays = {"users.info": delay}
    for uid in ("UNEW00001", "UNEW00002"):
        _new_user(fake_slack, uid)
    with served(db, slack_settings, fake_slack, answer_on_ack=True, listener_slots=slots) as sim:
        started = time.monotonic()
        for uid in ("UNEW00001", "UNEW00002"):
            assert sim.command("help", user=uid, wait=False).status == 200
        assert time.monotonic() - started < delay  # Slack never waits for a slot
        sim.wait_respond("cmd1")
        sim.wait_respond("cmd2")
        both = time.monotonic() - started
    if one_after_the_other:
        assert both >= 2 * delay
    else:
        assert both < 1.75 * delay


def test_fair_slots_hand_a_freed_slot_to_the_longest_waiting_thread():
    from bot.slack.runtime import FairSlots

    slots = FairSlots(1)
    assert slots.acquire()
    order: list[str] = []

    def wait_for_slot(name: str) -> None:
        assert slots.acquire()
        order.append(name)

    def start(name: str, queued: int) -> threading.Thread:
        thread = threading.Thread(target=wait_for_slot, args=(name,))
        thread.start()
        _until(lambda: len(slots._waiting) == queued)
        return thread

    first = start("first", 1)
    second = start("second", 2)
    slots.release()  # handed to "first" at once: nothing is free for anyone arriving now
    assert slots._free == 0
    late = start("late", 2)  # queued behind "second"
    first.join(5)
    assert order == ["first"]
    slots.release()  # "second" has waited longer than "late"
    second.join(5)
    assert order == ["first", "second"]
    slots.release()
    late.join(5)
    assert order == ["first", "second", "late"]
    # A wait with a time limit gives up, leaves the queue, and takes nothing.
    assert not slots.acquire(timeout=0.05)
    assert not slots._waiting
    slots.release()
    assert slots.acquire(timeout=0.05)  # the slot given back with nobody waiting is free again


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _interactive_form(payload) -> str:
    return urlencode({"payload": json.dumps(payload)})


def test_signed_payloads_of_the_wrong_shape_get_an_answer_never_a_dropped_connection(
    slack, fake_slack, db, admin
):
    """Each is signed, so it passes the signature check and must be refused by its shape."""
    ct_form, ct_json = "application/x-www-form-urlencoded", "application/json"
    user, team = {"id": "UADMIN001"}, {"id": fake_slack.team_id}
    shapes = [
        # a form submission without its state
        {
            "type": "view_submission",
            "user": user,
            "team": team,
            "view": {"id": "V1", "type": "modal", "callback_id": "deal_new"},
        },
        # a form submission whose state is not a mapping
        {
            "type": "view_submission",
            "user": user,
            "team": team,
            "view": {"id": "V1", "type": "modal", "callback_id": "log_note", "state": []},
        },
        # a button without its action id, and one that is not an object
        {"type": "block_actions", "user": user, "team": team, "actions": [{"value": "1"}]},
        {"type": "block_actions", "user": user, "team": team, "actions": ["x"]},
        # no user at all
        {"type": "block_actions", "team": team, "actions": [{"action_id": "card_show"}]},
        # options for a menu, without the typed value's owner
        {"type": "block_suggestion", "team": team, "action_id": "customer_options"},
        # a shortcut without its message
        {"type": "message_action", "user": user, "team": team, "callback_id": "log_to_crm"},
    ]
    for payload in shapes:
        status, _ = slack.post(_interactive_form(payload), ct_form)
        assert status in (200, 400), (payload, status)
    events = [
        {"type": "event_callback", "team_id": fake_slack.team_id, "event": [1, 2]},
        {"type": "event_callback", "team_id": fake_slack.team_id, "event": "message"},
        {"type": "event_callback", "team_id": fake_slack.team_id},
    ]
    for body in events:
        status, _ = slack.post(json.dumps(body), ct_json)
        assert status in (200, 400), (body, status)
    # Still alive and answering properly.
    assert "/crm find" in slack.command("help").text


def test_ids_too_large_for_the_store_are_refused_politely(slack, db, admin):
    add_customer(db, admin, name="Acme", email="jane@acme.com")
    huge = "99999999999999999999"
    for text in (
        f"show #{huge}",
        f"deal {huge} won",
        f"timeline #{huge}",
        f"deal {huge} move proposal",
    ):
        reply = slack.command(text)
        assert "Something went wrong" not in reply.text and "#" + huge in reply.text, text
    for action_id in ("card_show", "card_timeline", "followup_done", "card_log_note"):
        reply = slack.block_action({"action_id": action_id, "value": huge})
        assert reply.status == 200 and "Something went wrong" not in reply.text, action_id
        assert "no" in reply.text.lower(), action_id


def test_a_signed_request_sent_again_is_not_carried_out_twice(slack, fake_slack, db):
    form = _command_form(fake_slack, text="add Bob bob@bob.com")
    ts = int(time.time())
    first = slack.post(form, "application/x-www-form-urlencoded", timestamp=ts)
    again = slack.post(form, "application/x-www-form-urlencoded", timestamp=ts)
    assert first[0] == 200 and again[0] == 200
    fake_slack.wait_for("respond")
    time.sleep(0.5)
    assert _customers(db) == 1
    assert len(fake_slack.calls_to("respond")) == 1
    # The same text sent anew (a new timestamp, so a new signature) is a new request.
    slack.post(
        _command_form(fake_slack, text="add Ann ann@ann.com"), "application/x-www-form-urlencoded"
    )
    fake_slack.wait_for("respond", 2)
    assert _customers(db) == 2


def test_replays_are_remembered_across_replicas(slack_settings, db, fake_slack, people):
    """Two bot processes behind a load balancer share the store: a request replayed to the
    other one is still not carried out twice."""
    from tests.bot.slack.harness import served

    form = _command_form(fake_slack, text="add Bob bob@bob.com")
    ts = int(time.time())
    with (
        served(db, slack_settings, fake_slack, answer_on_ack=False) as one,
        served(db, slack_settings, fake_slack, answer_on_ack=False) as two,
    ):
        assert one.post(form, "application/x-www-form-urlencoded", timestamp=ts)[0] == 200
        assert two.post(form, "application/x-www-form-urlencoded", timestamp=ts)[0] == 200
    time.sleep(0.3)
    assert _customers(db) == 1


def test_a_failure_inside_bolt_still_gets_an_http_answer(slack_settings, db, fake_slack, people):
    from bot.slack.app import create_app
    from tests.bot.slack.harness import SECRET

    app = create_app(slack_settings, db, process_before_response=True)

    def broken(request):
        raise RuntimeError("a bug in a listener's dispatch")

    app.dispatch = broken  # type: ignore[method-assign]
    server = SlackHTTPComponent(app, db, host="127.0.0.1", port=0, signing_secret=SECRET)
    server.start()
    try:
        sim = SlackClientSim(server.url, fake_slack)
        status, body = sim.post(
            _command_form(fake_slack, text="help"), "application/x-www-form-urlencoded"
        )
        assert status == 500 and "internal error" in body
    finally:
        server.stop()


def _get(url: str) -> tuple[int, dict[str, str], str]:
    """A GET that does not follow redirects (a browser would hand slack:// to the Slack app)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def _home_views(fake_slack) -> list[dict]:
    out = []
    for call in fake_slack.calls_to("views.publish"):
        view = call.params["view"]
        view = json.loads(view) if isinstance(view, str) else view
        out.append({"user_id": call.params["user_id"], **view})
    return out


def test_a_digest_link_shows_the_customer_on_top_of_the_readers_home_tab(
    db, slack_settings, fake_slack, people, admin
):
    from bot.slack.app import create_app
    from crm.models import User
    from crm.services import digest_runs
    from tests.bot.slack.harness import SECRET

    settings = slack_settings.model_copy(
        update={"public_url": "https://crm.example", "secret_key": "k3y"}
    )
    customer = add_customer(db, admin, "Dora Due", "dora@due.com")
    manager = people["UMGR00001"]
    app = create_app(settings, db, process_before_response=True)
    server = SlackHTTPComponent(
        app, db, host="127.0.0.1", port=0, signing_secret=SECRET, settings=settings
    )
    server.start()
    try:
        token = digest_runs.customer_link_token("k3y", user_id=manager.id, customer_id=customer.id)
        status, headers, _page = _get(f"{server.url}/digests/open?t={token}")
        assert status == 302
        assert headers["Location"] == "slack://app?team=THOME0001&id=ACRMBOT01&tab=home"
        [view] = _home_views(fake_slack)
        assert view["user_id"] == "UMGR00001" and view["blocks"][0]["text"]["text"] == "Dora Due"
        assert json.loads(view["private_metadata"])["focus"] == customer.id
        # Slack renders the tab again as it opens: the customer stays on top for a while.
        sim = SlackClientSim(server.url, fake_slack)
        opened = {"type": "app_home_opened", "user": "UMGR00001", "tab": "home"}
        recent = view["private_metadata"]
        sim.event({**opened, "view": {"private_metadata": recent}}, event_id="Ev1")
        fake_slack.wait_for("views.publish", 2)
        assert _home_views(fake_slack)[1]["blocks"][0]["text"]["text"] == "Dora Due"
        stale = json.dumps({"focus": customer.id, "until": int(time.time()) - 1})
        sim.event({**opened, "view": {"private_metadata": stale}}, event_id="Ev2")
        fake_slack.wait_for("views.publish", 3)
        assert _home_views(fake_slack)[2]["blocks"][0]["text"]["text"] == "Hi Max Manager"
        # An altered link shows nothing; nor does the link of someone deactivated since.
        status, _headers, page = _get(f"{server.url}/digests/open?t={token[:-3]}AAA")
        assert status == 400 and "not valid" in page
        with db.transaction() as s:
            s.get(User, manager.id).active = False
        status, _headers, page = _get(f"{server.url}/digests/open?t={token}")
        assert status == 200 and f"/crm show #{customer.id}" in page
        assert all("Dora Due" not in json.dumps(v) for v in _home_views(fake_slack)[3:])
    finally:
        server.stop()
