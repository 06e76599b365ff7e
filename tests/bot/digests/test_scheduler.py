"""Scheduled digests with an injected clock: time zones, misfires, exactly once, retries, delivery."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from bot.scheduler import DigestService, SlackPoster, latest_fire_time, cron
from crm.config import Settings
from crm.models import DigestRun, FollowUp, Role, User
from tests.conftest import make_user
from tests.factories import add_customer, add_scoring_run


def _settings(db, **extra) -> Settings:
    return Settings(_env_file=None, database_url=db.url, timezone="Europe/Berlin", **extra)  # type: ignore[call-arg]


def _rep_with_work(db, admin, *, tz="Europe/Berlin", email="rita@ourco.com", slack_id=None):
    with db.transaction() as s:
        rep = User(name="Rita Rep", email=email, role=Role.rep, timezone=tz, slack_user_id=slack_id)
        s.add(rep)
        s.flush()
        rep_id = rep.id
    customer = add_customer(db, admin, "Dora Due", "dora@due.com", owner_id=rep_id)
    with db.transaction() as s:
        s.add(FollowUp(customer_id=customer.id, owner_id=rep_id, due_at=datetime(2026, 11, 20, 9, tzinfo=UTC), note="send quote"))
    return rep_id


def _outbox(tmp_path):
    return sorted((tmp_path / "outbox").glob("*.eml"))


def test_latest_fire_time_in_the_team_zone():
    trigger = cron("30 8 * * mon-fri", "Europe/Berlin")
    monday = datetime(2026, 11, 23, 7, 29, tzinfo=UTC)  # 08:29 Berlin
    assert latest_fire_time(trigger, monday, timedelta(hours=4)) is None
    fired = latest_fire_time(trigger, monday + timedelta(minutes=1), timedelta(hours=4))
    assert fired is not None and fired.astimezone(UTC) == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    saturday = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert latest_fire_time(trigger, saturday, timedelta(hours=4)) is None


def test_followups_fire_at_0830_in_each_reps_zone_once(db, admin, tmp_path):
    berlin = _rep_with_work(db, admin)
    with db.transaction() as s:
        ny = User(name="Nate York", email="nate@ourco.com", role=Role.rep, timezone="America/New_York")
        s.add(ny)
        s.flush()
        s.add(FollowUp(customer_id=1, owner_id=ny.id, due_at=datetime(2026, 11, 20, 9, tzinfo=UTC), note="ny item"))
    service = DigestService(_settings(db, outbox_dir=str(tmp_path / "outbox")), db, slack=None)
    assert service.tick(datetime(2026, 11, 23, 7, 29, tzinfo=UTC)) == []
    sent = service.tick(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))
    assert [(d.kind, d.recipient, d.status) for d in sent] == [("followups", "email:rita@ourco.com", "sent")]
    assert service.tick(datetime(2026, 11, 23, 7, 45, tzinfo=UTC)) == []  # once per period
    later = service.tick(datetime(2026, 11, 23, 13, 31, tzinfo=UTC))  # 08:31 in New York
    assert [(d.recipient, d.status) for d in later] == [("email:nate@ourco.com", "sent")]
    assert len(_outbox(tmp_path)) == 2
    assert berlin


def test_after_downtime_only_the_latest_period_within_grace_is_sent(db, admin, tmp_path):
    _rep_with_work(db, admin)
    service = DigestService(_settings(db, outbox_dir=str(tmp_path / "outbox"), digest_misfire_grace_minutes=240), db, slack=None)
    # Down all Friday and Monday early: back at 10:00 Berlin on Monday -> Monday's digest only.
    sent = service.tick(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    assert [d.period for d in sent] == ["2026-11-23T08:30+01:00"]
    # Back only in the evening: past the grace, nothing is sent for that day.
    service2 = DigestService(_settings(db, outbox_dir=str(tmp_path / "outbox"), digest_misfire_grace_minutes=240), db, slack=None)
    assert service2.tick(datetime(2026, 11, 24, 17, 0, tzinfo=UTC)) == []


def test_empty_digest_is_not_sent_and_opt_out_is_respected(db, admin, tmp_path):
    rep_id = _rep_with_work(db, admin)
    with db.transaction() as s:
        s.add(User(name="Idle Ivan", email="ivan@ourco.com", role=Role.rep, timezone="Europe/Berlin"))
    from crm.services import digest_runs
    from crm.services.actor import Actor

    with db.transaction() as s:
        digest_runs.set_subscription(s, user=s.get(User, rep_id), kind="followups", channel="email", subscribed=False,
                                     actor=Actor.system())
    service = DigestService(_settings(db, outbox_dir=str(tmp_path / "outbox")), db, slack=None)
    results = {d.recipient: (d.status, d.detail) for d in service.tick(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))}
    assert results == {"email:rita@ourco.com": ("skipped", "opted out"), "email:ivan@ourco.com": ("skipped", "nothing to report")}
    assert _outbox(tmp_path) == []


def test_real_smtp_starttls_auth_multipart(db, admin, smtp_server, tmp_path):
    _rep_with_work(db, admin)
    settings = _settings(db, smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_username="crmbot",
                         smtp_password="s3cret", smtp_ca_file=str(smtp_server.tls_files[0]),
                         smtp_from="crmbot <crm@ourco.com>")
    service = DigestService(settings, db, slack=None)
    sent = service.tick(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))
    assert [d.status for d in sent] == ["sent"]
    assert smtp_server.recorder.logins == ["crmbot"]
    [(rcpts, msg)] = smtp_server.recorder.messages
    assert rcpts == ["rita@ourco.com"]
    assert msg["To"] == "rita@ourco.com" and msg["Subject"].startswith("Your follow-ups")
    assert msg["List-Unsubscribe"].startswith("<mailto:crm@ourco.com?subject=unsubscribe%20followups")
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "send quote" in text and "Dora Due" in text
    assert "<strong>Dora Due</strong>" in html


def test_failed_smtp_is_recorded_then_retried(db, admin, tls_files):
    from tests.bot.digests.conftest import SMTPServer

    _rep_with_work(db, admin)
    server = SMTPServer(tls_files)  # not started yet: the port refuses connections
    settings = _settings(db, smtp_host="127.0.0.1", smtp_port=server.port, smtp_username="crmbot", smtp_password="s3cret",
                         smtp_ca_file=str(tls_files[0]), smtp_timeout=5)
    service = DigestService(settings, db, slack=None)
    first = service.tick(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))
    assert [d.status for d in first] == ["failed"]
    with db.session() as s:
        run = s.exec(select(DigestRun)).one()
        assert run.status == "failed" and run.attempts == 1 and "127.0.0.1" in run.last_error
    server.start()
    try:
        second = service.tick(datetime(2026, 11, 23, 7, 32, tzinfo=UTC))
    finally:
        server.stop()
    assert [d.status for d in second] == ["sent"]
    assert len(server.recorder.messages) == 1
    with db.session() as s:
        run = s.exec(select(DigestRun)).one()
        assert run.status == "sent" and run.attempts == 2


def test_two_schedulers_on_one_database_send_once(db, admin, tmp_path):
    _rep_with_work(db, admin)
    for n in range(5):
        with db.transaction() as s:
            s.add(User(name=f"Rep {n}", email=f"rep{n}@ourco.com", role=Role.rep, timezone="Europe/Berlin"))
            s.flush()
            s.add(FollowUp(customer_id=1, owner_id=s.exec(select(User.id).where(User.email == f"rep{n}@ourco.com")).one(),
                           due_at=datetime(2026, 11, 20, 9, tzinfo=UTC), note="x"))
    now = datetime(2026, 11, 23, 7, 31, tzinfo=UTC)
    results: list = []
    barrier = threading.Barrier(2)

    def replica(name: str) -> None:
        from crm.db import Database

        own_db = Database(db.url)
        service = DigestService(_settings(own_db, outbox_dir=str(tmp_path / "outbox")), own_db, slack=None, holder=name)
        barrier.wait()
        results.extend(service.tick(now))
        own_db.dispose()

    threads = [threading.Thread(target=replica, args=(f"replica-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sent = [r.recipient for r in results if r.status == "sent"]
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 6
    assert len(_outbox(tmp_path)) == 6


def test_slack_channel_post_and_dm_with_rate_limit_retry(db, admin, fake_slack, tmp_path):
    _rep_with_work(db, admin, slack_id="U0RITA")
    settings = _settings(db, outbox_dir=str(tmp_path / "outbox"), slack_bot_token="xoxb-test", slack_api_url=fake_slack.url)
    poster = SlackPoster(settings)
    fake_slack.fail_next.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"}))
    service = DigestService(settings, db, slack=poster)
    sent = service.tick(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))
    assert sorted((d.recipient, d.status) for d in sent) == [("email:rita@ourco.com", "sent"), ("slack:U0RITA", "sent")]
    opened = [body for method, body in fake_slack.calls if method == "conversations.open"]
    assert opened == [{"users": "U0RITA"}]
    [post] = fake_slack.posts()
    assert post["channel"] == "DU0RITA"
    assert any("Dora Due" in b.get("text", {}).get("text", "") for b in post["blocks"] if b["type"] == "section")


def test_manual_send_and_dry_run(db, admin, tmp_path):
    _rep_with_work(db, admin)
    service = DigestService(_settings(db, outbox_dir=str(tmp_path / "outbox")), db, slack=None)
    dry = service.send_now("followups", dry_run=True)
    assert [(d.recipient, d.status) for d in dry] == [("email:rita@ourco.com", "dry-run")]
    assert _outbox(tmp_path) == []
    sent = service.send_now("followups")
    assert [d.status for d in sent] == ["sent"] and len(_outbox(tmp_path)) == 1


@pytest.mark.parametrize("bad", ["every day", "61 * * * *"])
def test_bad_cron_fails_at_start_up(db, bad):
    from bot.scheduler import ConfigError

    with pytest.raises(ConfigError):
        DigestService(_settings(db, churn_digest_cron=bad), db, slack=None)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # autumn: 02:30 happens twice in Berlin on 2026-10-25
        (datetime(2026, 10, 25, 1, 40, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (datetime(2026, 10, 25, 3, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # spring: 02:30 does not exist in Berlin on 2026-03-29
        (datetime(2026, 3, 29, 4, 0, tzinfo=UTC), None),
    ],
)
def test_latest_fire_time_survives_daylight_saving_changes(now, expected):
    fired = latest_fire_time(cron("30 2 * * *", "Europe/Berlin"), now, timedelta(hours=4))
    assert (fired.astimezone(UTC) if fired else None) == expected or (expected is None and fired is not None and fired <= now)


def test_a_long_slack_digest_resumes_after_a_failed_part(db, admin, fake_slack, tmp_path):
    rep_id = _rep_with_work(db, admin, slack_id="U0RITA", email=None)
    with db.transaction() as s:
        for n in range(20):  # overdue, and due later today: two full sections, two messages
            s.add(FollowUp(customer_id=1, owner_id=rep_id, due_at=datetime(2026, 11, 20, 9, tzinfo=UTC), note=f"late {n}"))
            s.add(FollowUp(customer_id=1, owner_id=rep_id, due_at=datetime(2026, 11, 23, 15, tzinfo=UTC), note=f"today {n}"))
    settings = _settings(db, outbox_dir=str(tmp_path / "outbox"), slack_bot_token="xoxb-test", slack_api_url=fake_slack.url)
    service = DigestService(settings, db, slack=SlackPoster(settings))
    # conversations.open and part 1 go through; part 2 fails for good this time
    fake_slack.fail_after = 2
    first = service.tick(datetime(2026, 11, 23, 7, 31, tzinfo=UTC))
    assert [d.status for d in first] == ["failed"]
    assert len(fake_slack.posts()) == 1
    fake_slack.fail_after = None
    second = service.tick(datetime(2026, 11, 23, 7, 33, tzinfo=UTC))
    assert [d.status for d in second] == ["sent"]
    texts = [p["text"] for p in fake_slack.posts()]
    assert len(texts) == len(set(texts))  # no part was posted twice
    assert texts[0].endswith("(part 1 of 2)") and texts[-1].endswith("(part 2 of 2)")


def _churn_run(db, customers, probabilities, finished):
    add_scoring_run(db, [c.id for c in customers], probabilities, finished=finished,
                    values=[5000.0] * len(customers), segments={c.id: "At Risk" for c in customers})


def test_each_recipient_sees_changes_since_the_digest_it_got(db, admin, tmp_path):
    from email import message_from_bytes, policy

    make_user(db, "Mia Manager", Role.manager, email="mia@ourco.com")
    ann, ben = (add_customer(db, admin, n, f"{n.lower()}@x.com") for n in ("Ann", "Ben"))
    monday = datetime(2026, 11, 23, 7, 1, tzinfo=UTC)  # 08:01 in Berlin
    _churn_run(db, [ann, ben], [0.7, 0.1], monday - timedelta(hours=5))
    service = DigestService(_settings(db, outbox_dir=str(tmp_path / "outbox")), db, slack=None)
    sent = service.tick(monday)
    assert [(d.recipient, d.status) for d in sent] == [("email:mia@ourco.com", "sent")]
    # Refreshed twice before Tuesday's digest; a new manager joins.
    _churn_run(db, [ann, ben], [0.75, 0.4], monday + timedelta(hours=10))
    _churn_run(db, [ann, ben], [0.8, 0.42], monday + timedelta(hours=19))
    make_user(db, "Noor New", Role.manager, email="noor@ourco.com")
    tuesday = monday + timedelta(days=1)
    assert sorted(d.recipient for d in service.tick(tuesday) if d.status == "sent") == [
        "email:mia@ourco.com", "email:noor@ourco.com"]

    def text_to(address: str) -> str:
        for path in _outbox(tmp_path):
            msg = message_from_bytes(path.read_bytes(), policy=policy.default)
            if msg["To"] == address and "Tue" in msg["Subject"]:
                return msg.get_body(("plain",)).get_content()
        raise AssertionError(address)

    mia = text_to("mia@ourco.com")
    assert "on this list since Mon 23 Nov, +10 pts" in mia  # Ann: 70% -> 80%
    assert "Ben #" in mia and "new on this list (was 10% on Mon 23 Nov)" in mia
    noor = text_to("noor@ourco.com")
    assert "pts" not in noor and "new on this list" not in noor
    assert "Changes will show from the next digest" in noor
    with db.session() as s:
        runs = s.exec(select(DigestRun).where(DigestRun.recipient == "email:mia@ourco.com")
                      .order_by(DigestRun.id)).all()
    listed = [sorted(r.meta["listed"]) for r in runs]
    assert listed == [[str(ann.id)], sorted([str(ann.id), str(ben.id)])]


@pytest.mark.parametrize("public", [True, False])
def test_customers_in_a_digest_email_link_into_slack(db, admin, fake_slack, tmp_path, public):
    from email import message_from_bytes, policy

    from crm.services import digest_runs

    mia, _ = make_user(db, "Mia Manager", Role.manager, email="mia@ourco.com")
    with db.transaction() as s:
        s.get(User, mia.id).slack_user_id = "U0MIA"
    ann = add_customer(db, admin, "Ann", "ann@x.com")
    _churn_run(db, [ann], [0.7], datetime(2026, 11, 23, 2, tzinfo=UTC))
    extra = {"public_url": "https://crm.example/", "secret_key": "k3y"} if public else {}
    settings = _settings(db, outbox_dir=str(tmp_path / "outbox"), slack_bot_token="xoxb-test",
                         slack_api_url=fake_slack.url, **extra)
    service = DigestService(settings, db, slack=SlackPoster(settings))
    service.tick(datetime(2026, 11, 23, 7, 1, tzinfo=UTC))
    [eml] = _outbox(tmp_path)
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    html, text = msg.get_body(("html",)).get_content(), msg.get_body(("plain",)).get_content()
    if public:
        token = text.split("Open: https://crm.example/digests/open?t=")[1].split()[0]
        assert digest_runs.read_customer_link_token("k3y", token) == (mia.id, ann.id)
        assert f'href="https://crm.example/digests/open?t={token}"' in html
    else:
        home = "slack://app?team=T0TEAM&amp;id=A0CRMBOT&amp;tab=home"
        assert f'<a href="{home}"' in html and "Open in Slack" in html
        assert "Open: slack://app?team=T0TEAM&id=A0CRMBOT&tab=home" in text


def test_without_slack_a_digest_email_names_customers_by_number(db, admin, tmp_path):
    make_user(db, "Mia Manager", Role.manager, email="mia@ourco.com")
    ann = add_customer(db, admin, "Ann", "ann@x.com")
    _churn_run(db, [ann], [0.7], datetime(2026, 11, 23, 2, tzinfo=UTC))
    service = DigestService(_settings(db, outbox_dir=str(tmp_path / "outbox")), db, slack=None)
    service.tick(datetime(2026, 11, 23, 7, 1, tzinfo=UTC))
    [eml] = _outbox(tmp_path)
    raw = eml.read_text()
    assert f"Ann #{ann.id}" in raw and "Open in Slack" not in raw and "Open:" not in raw


def test_the_scheduled_backup_runs_once_per_night_and_keeps_the_newest_n(db, admin, tmp_path):
    from bot.scheduler import SchedulerComponent
    from crm.services import backups

    add_customer(db, admin)
    folder = tmp_path / "backups"
    settings = _settings(db, backup_cron="0 1 * * *", backup_dir=str(folder), backup_keep=2)
    component = SchedulerComponent(settings, db)
    made = []
    for day in (1, 2, 3):
        now = datetime(2026, 12, day, 0, 1, tzinfo=UTC)  # 01:01 in Berlin
        made.append(component._backup(now))
        assert component._backup(now + timedelta(minutes=5)) is None  # that night is done
    assert all(made)
    assert sorted(folder.iterdir()) == sorted(made[1:])
    assert backups.read_manifest(made[-1]).counts["customers"] == 1


def test_the_nightly_retention_runs_once_and_is_shown_by_the_cli(db, admin, crmbot, monkeypatch):
    from bot.scheduler import SchedulerComponent
    from crm.models import Channel, InteractionCreate, QuarantinedMessage
    from crm.services import interactions

    c = add_customer(db, admin)
    now = datetime(2026, 12, 4, 2, 20, tzinfo=UTC)  # 03:20 in Berlin, after 03:15
    with db.transaction() as session:
        interactions.record_interaction(
            session,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=c.id, channel=Channel.note, occurred_at=now - timedelta(days=90)
            ),
        )
        session.add(
            QuarantinedMessage(
                source="imap:x", external_id="q", reason="r", raw=b"x", received_at=now
            )
        )
    settings = _settings(db, retention_interactions_days=60)
    component = SchedulerComponent(settings, db)
    assert component._retention(now) == 1
    assert component._retention(now + timedelta(minutes=5)) is None  # that night is done
    monkeypatch.setenv("CRM_RETENTION_INTERACTIONS_DAYS", "60")
    code, out, err = crmbot("retention", "status")
    assert code == 0, err
    assert "interactions: 60 days" in out and "raw mail: kept" in out
    assert "scheduler" in out and "due now: 0 interactions deleted" in out
