"""Campaigns end to end: the command line, real SMTP, mail capture of replies, and the report."""

from __future__ import annotations

import multiprocessing as mp
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from crm.config import Settings
from crm.db import Database
from crm.models import (
    Campaign,
    CampaignMember,
    Channel,
    Direction,
    Interaction,
    InteractionCreate,
    utcnow,
)
from crm.services import campaigns as svc
from crm.services import interactions as interaction_svc
from crm.services.actor import Actor
from tests.factories import add_customer

TEMPLATE = (
    "Subject: News for {{ customer.company or customer.name }}\n"
    "Hello {{ customer.first_name }},\n\nour spring offer.\n\nStop these mails: {{ unsubscribe }}\n"
)


@pytest.fixture
def audience(db, admin, tmp_path: Path) -> tuple[Path, Path, dict[str, int]]:
    emails = {}
    for i in range(20):
        c = add_customer(
            db,
            admin,
            name=f"Person {i:02d}",
            email=f"p{i:02d}@shop{i:02d}.com",
            company=f"Shop {i:02d}",
        )
        emails[f"p{i:02d}@shop{i:02d}.com"] = c.id
    customers = tmp_path / "customers.txt"
    customers.write_text("\n".join(emails) + "\n")
    template = tmp_path / "spring.j2"
    template.write_text(TEMPLATE)
    return customers, template, emails


def _smtp_env(monkeypatch, smtp_server) -> None:
    for key, value in {
        "CRM_SMTP_HOST": "127.0.0.1",
        "CRM_SMTP_PORT": str(smtp_server.port),
        "CRM_SMTP_USERNAME": "crmbot",
        "CRM_SMTP_PASSWORD": "s3cret",
        "CRM_SMTP_CA_FILE": str(smtp_server.tls_files[0]),
        "CRM_CAMPAIGN_RATE_PER_MINUTE": "60000",
        "CRM_SMTP_FROM": "Shop <news@ourco.com>",
    }.items():
        monkeypatch.setenv(key, value)


def _members(db: Database) -> dict[str, list[str]]:
    with db.session() as s:
        rows = s.exec(select(CampaignMember.arm, CampaignMember.email)).all()
    return {arm: sorted(e for a, e in rows if a == arm) for arm in ("treatment", "control")}


def test_control_is_never_contacted_and_each_treated_customer_gets_one_mail(
    db, crmbot, audience, smtp_server, monkeypatch
):
    customers, template, emails = audience
    _smtp_env(monkeypatch, smtp_server)
    code, out, err = crmbot(
        "campaign",
        "create",
        "spring",
        "--customers",
        str(customers),
        "--template",
        str(template),
        "--holdout",
        "30%",
        "--window",
        "2w",
    )
    assert code == 0, err
    arms = _members(db)
    assert len(arms["control"]) == 6 and len(arms["treatment"]) == 14
    code, out, err = crmbot("campaign", "send", "spring", "--dry-run")
    assert code == 0 and "would send 14" in out
    assert smtp_server.recorder.messages == []
    code, out, err = crmbot("campaign", "send", "spring")
    assert code == 0, err
    got = sorted(r for rcpts, _ in smtp_server.recorder.messages for r in rcpts)
    assert got == arms["treatment"]
    assert not set(got) & set(arms["control"])
    rcpts, msg = smtp_server.recorder.messages[0]
    assert msg["List-Unsubscribe"].startswith("<mailto:news@ourco.com")
    company = "Shop " + rcpts[0][1:3]
    assert msg["Subject"] == f"News for {company}"
    assert "Hello Person" in msg.get_content()
    # Sending again sends nothing more.
    code, out, err = crmbot("campaign", "send", "spring")
    assert code == 0 and "sent 0" in out
    assert len(smtp_server.recorder.messages) == 14
    code, out, _ = crmbot("campaign", "list")
    assert "spring" in out and "14" in out


def test_opted_out_addresses_are_skipped(db, crmbot, audience, smtp_server, monkeypatch):
    customers, template, emails = audience
    _smtp_env(monkeypatch, smtp_server)
    assert (
        crmbot(
            "campaign",
            "create",
            "spring",
            "--customers",
            str(customers),
            "--template",
            str(template),
            "--holdout",
            "0%",
        )[0]
        == 0
    )
    assert crmbot("campaign", "optout", "P03@shop03.com")[0] == 0
    code, out, err = crmbot("campaign", "send", "spring")
    assert code == 0, err
    got = {r for rcpts, _ in smtp_server.recorder.messages for r in rcpts}
    assert len(got) == 19 and "p03@shop03.com" not in got
    assert "p03@shop03.com: opted out" in out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--segment", "Champions"], "segment"),
        (["--holdout", "95%"], "holdout"),
        (["--holdout", "ten"], "holdout"),
        (["--window", "forever"], "window"),
        (["--filter", "colour=red"], "filter"),
        (["--template", "BROKEN"], "template has an error"),
        (["--template", "UNKNOWN"], "template has an error"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written_or_sent(
    db, crmbot, audience, smtp_server, monkeypatch, tmp_path, args, words
):
    customers, template, _ = audience
    _smtp_env(monkeypatch, smtp_server)
    broken = tmp_path / "broken.j2"
    broken.write_text("Subject: hi\nHello {{ customer.name \n")
    unknown = tmp_path / "unknown.j2"
    unknown.write_text("Subject: hi\nHello {{ customer.shoe_size }}\n")
    args = [{"BROKEN": str(broken), "UNKNOWN": str(unknown)}.get(a, a) for a in args]
    base = ["campaign", "create", "spring"]
    if "--segment" not in args and "--filter" not in args:
        base += ["--customers", str(customers)]
    if "--template" not in args:
        base += ["--template", str(template)]
    code, out, err = crmbot(*base, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and words in err.lower()
    with db.session() as s:
        assert s.exec(select(sa.func.count()).select_from(Campaign)).one() == 0
        assert s.exec(select(sa.func.count()).select_from(CampaignMember)).one() == 0
    assert smtp_server.recorder.messages == []
    assert crmbot("campaign", "send", "spring")[0] == 2  # no such campaign: nothing sent
    assert smtp_server.recorder.messages == []


def test_a_reply_is_threaded_to_the_campaign_mail_and_counts_with_purchases_and_deals(
    db, crmbot, audience, admin, settings, tmp_path, monkeypatch
):
    customers, template, emails = audience
    monkeypatch.setenv("CRM_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("CRM_CAMPAIGN_RATE_PER_MINUTE", "60000")
    monkeypatch.setenv("CRM_INTERNAL_DOMAINS", "ourco.com")
    assert (
        crmbot(
            "campaign",
            "create",
            "spring",
            "--customers",
            str(customers),
            "--template",
            str(template),
            "--holdout",
            "50%",
            "--seed",
            "11",
        )[0]
        == 0
    )
    assert crmbot("campaign", "send", "spring")[0] == 0
    arms = _members(db)
    sent = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(sent) == len(arms["treatment"]) == 10
    original = message_from_bytes(sent[0].read_bytes(), policy=policy.default)
    to = original["To"].addresses[0].addr_spec
    assert to in arms["treatment"]
    # The customer answers from their mail client: In-Reply-To and References name our mail.
    reply = tmp_path / "reply.eml"
    reply.write_bytes(
        (
            f"From: Someone <{to}>\r\nTo: news@ourco.com\r\nSubject: Re: {original['Subject']}\r\n"
            f"Message-ID: <reply-1@shop.example>\r\nIn-Reply-To: {original['Message-ID']}\r\n"
            f"References: {original['Message-ID']}\r\n"
            f"Date: {utcnow():%a, %d %b %Y %H:%M:%S +0000}\r\n\r\n"
            "Yes please, tell me more.\r\n"
        ).encode()
    )
    code, out, err = crmbot("ingest", str(reply))
    assert code == 0, err
    mid = original["Message-ID"].strip("<>")
    with db.session() as s:
        captured = s.exec(
            select(Interaction).where(Interaction.external_id == "reply-1@shop.example")
        ).one()
        ours = s.exec(
            select(Interaction).where(
                Interaction.source == "campaign", Interaction.external_id == mid
            )
        ).one()
    assert captured.direction == Direction.inbound and captured.thread_key == ours.thread_key
    # A control customer buys on their own: the control arm responds too, with revenue.
    with db.transaction() as s:
        buyer = emails[arms["control"][0]]
        interaction_svc.record_interaction(
            s,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=buyer,
                channel=Channel.purchase,
                amount=120,
                currency="USD",
                body="order",
            ),
        )
    # A mail in no campaign thread counts for nobody.
    code, out, err = crmbot("campaign", "report", "spring", "--json")
    assert code == 0, err
    import json

    data = json.loads(out)
    by_arm = {a["arm"]: a for a in data["arms"]}
    assert by_arm["treatment"]["responded"] == 1 and by_arm["treatment"]["contacted"] == 10
    assert by_arm["control"]["responded"] == 1 and by_arm["control"]["contacted"] == 0
    assert by_arm["control"]["revenue_per_customer"] == pytest.approx(12.0)
    assert data["uplifts"][0]["points"] == pytest.approx(0.0)
    assert "95% CI" in data["uplifts"][0]["sentence"]
    code, out, err = crmbot("campaign", "report", "spring")
    assert code == 0 and "no clear effect" in out


def _send_worker(url: str, smtp: dict[str, object], start) -> None:  # type: ignore[no-untyped-def]
    from bot.campaigns import CampaignSender

    from crm import crypto

    settings = Settings(_env_file=None, database_url=url, campaign_rate_per_minute=60000, **smtp)  # type: ignore[arg-type]
    crypto.configure(settings)  # a new process: its keys, as at crmbot's start-up
    db = Database(url)
    start.wait()
    CampaignSender(settings, db).send("spring", actor=Actor.system("sender"))
    db.dispose()


def test_two_processes_sending_at_once_send_each_mail_once(db, admin, audience, smtp_server):
    customers, template, emails = audience
    with db.transaction() as s:
        ids = svc.audience_ids(s, customers=list(emails.values()))
        svc.create_campaign(
            s,
            name="spring",
            customer_ids=ids,
            audience={"customers": "x"},
            subject="Hi",
            template="Hello {{ customer.name }}",
            holdout=0.2,
            window_days=14,
            actor=admin,
            seed=5,
        )
    smtp = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_server.port,
        "smtp_username": "crmbot",
        "smtp_password": "s3cret",
        "smtp_ca_file": str(smtp_server.tls_files[0]),
    }
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    workers = [ctx.Process(target=_send_worker, args=(db.url, smtp, start)) for _ in range(2)]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    got = sorted(r for rcpts, _ in smtp_server.recorder.messages for r in rcpts)
    assert got == _members(db)["treatment"]
    assert len(got) == 16


def test_the_unsubscribe_link_opts_out_after_a_click_and_a_forged_one_changes_nothing(
    db, admin, audience, tmp_path
):
    import urllib.error
    import urllib.request

    from bot.campaigns import CampaignSender
    from bot.slack.app import create_app
    from bot.slack.runtime import SlackHTTPComponent

    customers, template, emails = audience
    settings = Settings(
        _env_file=None,
        database_url=db.url,
        outbox_dir=str(tmp_path / "outbox"),  # type: ignore[call-arg]
        public_url="http://127.0.0.1:1",
        secret_key="k3y",
        campaign_rate_per_minute=60000,
        slack_bot_token="xoxb-test",
        slack_signing_secret="s",
    )
    with db.transaction() as s:
        svc.create_campaign(
            s,
            name="spring",
            customer_ids=list(emails.values()),
            audience={"customers": "x"},
            subject="Hi",
            template="Hello\n{{ unsubscribe }}",
            holdout=0,
            window_days=14,
            actor=admin,
            seed=5,
        )
    CampaignSender(settings, db).send("spring", actor=admin)
    [first, *_] = sorted((tmp_path / "outbox").glob("*.eml"))
    msg = message_from_bytes(first.read_bytes(), policy=policy.default)
    to = msg["To"].addresses[0].addr_spec
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = msg["List-Unsubscribe"].split(">")[0].lstrip("<")
    assert (
        link.startswith("http://127.0.0.1:1/campaigns/unsubscribe?t=") and link in msg.get_content()
    )
    server = SlackHTTPComponent(
        create_app(settings, db),
        db,
        host="127.0.0.1",
        port=0,
        signing_secret="s",
        settings=settings,
    )
    server.start()

    def call(url: str, data: bytes | None = None) -> tuple[int, str]:
        request = urllib.request.Request(
            url, data=data, method="POST" if data is not None else "GET"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    try:
        local = server.url + link.removeprefix("http://127.0.0.1:1")
        status, page = call(local)  # opening the link changes nothing
        assert status == 200 and "<form method='post'>" in page
        with db.session() as s:
            assert not svc.is_opted_out(s, to)
        forged = local[:-3] + ("AAA" if not local.endswith("AAA") else "BBB")
        status, page = call(forged, data=b"")
        assert status == 400 and "not valid" in page
        with db.session() as s:
            assert not svc.is_opted_out(s, to)
        status, page = call(local, data=b"List-Unsubscribe=One-Click")
        assert status == 200 and "no more campaign mail" in page
        with db.session() as s:
            assert svc.is_opted_out(s, to)
    finally:
        server.stop()


def test_sends_are_spread_under_the_rate_limit_and_preview_says_who_gets_what(
    db, admin, audience, tmp_path, crmbot, monkeypatch
):
    from bot.campaigns import CampaignSender

    customers, template, emails = audience
    with db.transaction() as s:
        svc.create_campaign(
            s,
            name="spring",
            customer_ids=list(emails.values())[:6],
            audience={"customers": "x"},
            subject="Hi",
            template="Hello",
            holdout=0,
            window_days=14,
            actor=admin,
            seed=5,
        )
        svc.opt_out(s, email=list(emails)[0], actor=admin)
    monkeypatch.setenv("CRM_OUTBOX_DIR", str(tmp_path / "outbox"))
    code, out, err = crmbot("campaign", "preview", "spring", "--json")
    assert code == 0, err
    import json

    data = json.loads(out)
    assert (data["to_send"], data["opted_out"], data["control"], data["sent"]) == (5, 1, 0, 0)
    waits: list[float] = []
    settings = Settings(
        _env_file=None,
        database_url=db.url,
        outbox_dir=str(tmp_path / "outbox"),  # type: ignore[call-arg]
        campaign_rate_per_minute=30,
    )
    now = [0.0]  # a clock that moves only when the sender waits: sending itself takes no time

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    result = CampaignSender(settings, db, sleep=sleep, clock=lambda: now[0]).send(
        "spring", actor=admin
    )
    assert len(result.sent) == 5 and [who for who, _ in result.skipped] == [list(emails)[0]]
    # 30 a minute: two seconds between sends, so four waits before the last four of five.
    assert waits == [2.0, 2.0, 2.0, 2.0]


def test_a_campaign_not_sent_yet_reports_no_uplift(db, crmbot, audience):
    customers, template, _ = audience
    assert (
        crmbot(
            "campaign",
            "create",
            "spring",
            "--customers",
            str(customers),
            "--template",
            str(template),
        )[0]
        == 0
    )
    code, out, err = crmbot("campaign", "report", "spring")
    assert code == 0 and "not sent yet" in out and "points" not in out


def test_a_segment_of_the_latest_run_and_a_filter_choose_the_audience(db, crmbot, audience):
    from tests.factories import add_scoring_run

    customers, template, emails = audience
    ids = list(emails.values())
    at_risk = set(ids[:5])
    add_scoring_run(
        db, ids, [0.5] * len(ids), finished=utcnow(), segments={cid: "At Risk" for cid in at_risk}
    )
    code, out, err = crmbot(
        "campaign",
        "create",
        "winback",
        "--segment",
        "At Risk",
        "--template",
        str(template),
        "--holdout",
        "0%",
        "--json",
    )
    assert code == 0, err
    with db.session() as s:
        chosen = set(s.exec(select(CampaignMember.customer_id)).all())
    assert chosen == at_risk
    code, out, err = crmbot(
        "campaign", "create", "shops", "--filter", "company=Shop 03", "--template", str(template)
    )
    assert code == 0, err
    with db.session() as s:
        shops = s.exec(select(Campaign).where(Campaign.name == "shops")).one()
        members = s.exec(
            select(CampaignMember.customer_id).where(CampaignMember.campaign_id == shops.id)
        ).all()
    assert members == [emails["p03@shop03.com"]]
