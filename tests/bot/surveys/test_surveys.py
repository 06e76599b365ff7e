"""Satisfaction surveys: due after a quiet answered thread, signed single-use expiring links."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.slack.app import create_app
from bot.slack.runtime import SlackHTTPComponent
from bot.surveys import SurveySender
from crm.config import Settings
from crm.models import Channel, Direction, Interaction, InteractionCreate, Survey, utcnow
from crm.services import interactions as interaction_svc
from crm.services import surveys as svc
from crm.services.errors import CRMError
from tests.factories import add_customer


def test_rating_token_round_trip_tampering_and_expiry():
    now = utcnow()
    token = svc.rating_token("k3y", survey_id=7, rating=4, expires_at=now + timedelta(days=1))
    assert svc.read_rating_token("k3y", token, now=now) == (7, 4)
    with pytest.raises(CRMError, match="not valid"):
        svc.read_rating_token("other", token, now=now)
    with pytest.raises(CRMError, match="not valid"):
        svc.read_rating_token(
            "k3y", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], now=now
        )
    with pytest.raises(CRMError, match="expired"):
        svc.read_rating_token("k3y", token, now=now + timedelta(days=2))
    with pytest.raises(CRMError, match="not valid"):
        svc.read_rating_token("k3y", "garbage", now=now)


def _settings(db, smtp_server, **extra) -> Settings:
    values = dict(
        database_url=db.url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_username="crmbot",
        smtp_password="s3cret",
        smtp_ca_file=str(smtp_server.tls_files[0]),
        public_url="http://127.0.0.1:1",
        secret_key="k3y",
        slack_bot_token="xoxb-test",
        slack_signing_secret="s",
        internal_domains=["ourco.com"],
    )
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _thread(
    db, admin, customer_id: int, *, asked_hours: float, answered_hours: float | None
) -> None:
    now = utcnow()
    with db.transaction() as s:
        for direction, hours in (
            (Direction.inbound, asked_hours),
            (Direction.outbound, answered_hours),
        ):
            if hours is None:
                continue
            interaction_svc.record_interaction(
                s,
                actor=admin,
                interaction_in=InteractionCreate(
                    customer_id=customer_id,
                    channel=Channel.email,
                    direction=direction,
                    occurred_at=now - timedelta(hours=hours),
                    body="x",
                    thread_key=f"mail:t{customer_id}@acme.com",
                ),
            )


def _call(url: str, data: dict[str, str] | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_surveys_are_off_by_default(db, admin, smtp_server):
    c = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    _thread(db, admin, c.id, asked_hours=30, answered_hours=25)
    assert SurveySender(_settings(db, smtp_server), db).tick() == []
    assert smtp_server.recorder.messages == []
    with db.session() as s:
        assert s.exec(select(Survey)).all() == []


def test_a_quiet_answered_thread_gets_one_survey_whose_link_counts_once(db, admin, smtp_server):
    settings = _settings(db, smtp_server, csat_enabled=True)
    answered = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    waiting = add_customer(db, admin, "Bob Stone", "bob@initech.com")
    recent = add_customer(db, admin, "Ann Lee", "ann@globex.com")
    _thread(db, admin, answered.id, asked_hours=30, answered_hours=25)
    _thread(db, admin, waiting.id, asked_hours=30, answered_hours=None)  # not answered yet
    _thread(
        db, admin, recent.id, asked_hours=3, answered_hours=2
    )  # answered, not quiet for 24 h yet
    sent = SurveySender(settings, db).tick()
    assert [(s.email, s.status) for s in sent] == [("jane@acme.com", "sent")]
    [(rcpts, msg)] = smtp_server.recorder.messages
    assert rcpts == ["jane@acme.com"]
    links = re.findall(r"http://127\.0\.0\.1:1/csat\?t=\S+", msg.get_content())
    assert len(links) == 5
    assert SurveySender(settings, db).tick() == []  # one survey per customer per CRM_CSAT_MIN_DAYS
    server = SlackHTTPComponent(
        create_app(settings, db),
        db,
        host="127.0.0.1",
        port=0,
        signing_secret="s",
        settings=settings,
    )
    server.start()
    try:
        four = next(
            link for link in links if svc.read_rating_token("k3y", link.split("t=")[1])[1] == 4
        )
        two = next(
            link for link in links if svc.read_rating_token("k3y", link.split("t=")[1])[1] == 2
        )
        local = server.url + four.removeprefix("http://127.0.0.1:1")
        status, page = _call(local)  # opening the link shows the page and records nothing
        assert status == 200 and "4 of 5" in page and "<form method='post'>" in page
        with db.session() as s:
            assert s.exec(select(Interaction).where(Interaction.source == "csat")).all() == []
        tampered = local[:-3] + ("AAA" if not local.endswith("AAA") else "BBB")
        status, page = _call(tampered, {"comment": "forged"})
        assert status == 400 and "not valid" in page
        status, page = _call(local, {"comment": "Quick & kind"})
        assert status == 200 and "recorded" in page
        status, page = _call(
            server.url + two.removeprefix("http://127.0.0.1:1"), {"comment": "again"}
        )
        assert status == 400 and "answered already" in page  # the survey's other links are used up
        status, page = _call(local, {"comment": "replayed"})
        assert status == 400 and "answered already" in page
        with db.session() as s:
            [rating] = s.exec(select(Interaction).where(Interaction.source == "csat")).all()
            survey = s.exec(select(Survey)).one()
            assert rating.customer_id == answered.id and rating.meta["csat"] == 4
            assert rating.body == "Satisfaction 4/5: Quick & kind"
            assert (survey.rating, survey.comment) == (4, "Quick & kind")
            assert svc.satisfaction(s, answered.id).trend == "first rating"
        # An expired link (signed right, but past its time) changes nothing either.
        with db.transaction() as s:
            s.execute(
                sa.update(Survey).values(
                    answered_at=None,
                    rating=None,
                    status="sent",
                    expires_at=utcnow() - timedelta(days=1),
                )
            )
        status, page = _call(local, {"comment": "late"})
        assert status == 400 and "expired" in page
        with db.session() as s:
            assert s.exec(select(Survey.rating)).one() is None
            assert len(s.exec(select(Interaction).where(Interaction.source == "csat")).all()) == 1
    finally:
        server.stop()


def test_the_card_shows_the_latest_score_and_trend_and_the_digest_lists_low_scores(
    db, admin, settings, crmbot
):
    from bot.digests import build_followups_digest, render_text
    from crm.models import Role, User
    from crm.services import customers as customer_svc

    with db.transaction() as s:
        rep = User(name="Rita Rep", email="rita@ourco.com", role=Role.rep, timezone="Europe/Berlin")
        s.add(rep)
        s.flush()
        rep_id = rep.id
    unhappy = add_customer(db, admin, "Jane Doe", "jane@acme.com", owner_id=rep_id)
    happy = add_customer(db, admin, "Bob Stone", "bob@initech.com", owner_id=rep_id)
    now = utcnow()
    for customer, ratings in ((unhappy, (4, 2)), (happy, (5,))):
        for n, rating in enumerate(ratings):
            when = now - timedelta(days=60 * (len(ratings) - 1 - n))
            with db.transaction() as s:
                survey = svc.open_survey(
                    s,
                    customer_id=customer.id,
                    email="x@y.com",
                    trigger="manual",
                    min_days=30,
                    link_days=14,
                    actor=admin,
                    now=when,
                )
                svc.record_rating(
                    s,
                    survey_id=survey.id,
                    rating=rating,
                    comment="slow answers" if rating == 2 else None,
                    now=when,
                )
    with db.session() as s:
        card = customer_svc.customer_card(s, unhappy.id)
        rep_user = s.get(User, rep_id)
        digest = build_followups_digest(s, settings, user=rep_user, now=now)
    rated = card.extras["satisfaction"]
    assert (rated.latest, rated.previous, rated.trend) == (2, 4, "down")
    import json

    from bot.slack.blocks.customers import customer_card as card_blocks

    assert "*Satisfaction:* 2/5 (down, 4/5 before)" in json.dumps(
        card_blocks(card, None, tz="UTC", scored=False)
    )
    code, out, err = crmbot("customer", "show", "jane@acme.com")
    assert code == 0 and "Satisfaction: 2/5 (down, 4/5 before)" in out
    [section] = [s for s in digest.sections if s.key == "low_csat"]
    assert [i.title for i in section.items] == ["Jane Doe"]
    assert "Rated 2/5: slow answers" in render_text(digest)


def test_a_done_service_follow_up_brings_one_survey_and_a_sales_one_none(db, admin, smtp_server):
    from crm.models import FollowUp, FollowUpKind
    from crm.services import followups as followup_svc

    settings = _settings(db, smtp_server, csat_enabled=True)
    served = add_customer(db, admin, "Sam Served", "sam@served.com")
    sold = add_customer(db, admin, "Sal Sold", "sal@sold.com")
    ids = {}
    with db.transaction() as s:
        for customer, kind in ((served, "service"), (sold, "sales")):
            f = followup_svc.create_follow_up(
                s, customer_id=customer.id, when="tomorrow 9am", actor=admin, tz="UTC", kind=kind
            )
            ids[kind] = f.id
    assert SurveySender(settings, db).tick() == []  # not done yet
    with db.transaction() as s:
        for f in ids.values():
            followup_svc.complete_follow_up(s, follow_up_id=f, actor=admin)
    sent = SurveySender(settings, db).tick()
    assert [(x.email, x.status) for x in sent] == [("sam@served.com", "sent")]
    [(rcpts, _msg)] = smtp_server.recorder.messages
    assert rcpts == ["sam@served.com"]
    with db.session() as s:
        [survey] = s.exec(select(Survey)).all()
        assert survey.trigger == "service_follow_up" and survey.thread_key is None
        assert s.get(FollowUp, ids["service"]).kind == FollowUpKind.service
    # A second service follow-up done within CRM_CSAT_MIN_DAYS brings no second survey.
    with db.transaction() as s:
        again = followup_svc.create_follow_up(
            s, customer_id=served.id, when="tomorrow 9am", actor=admin, tz="UTC", kind="service"
        )
        followup_svc.complete_follow_up(s, follow_up_id=again.id, actor=admin)
    assert SurveySender(settings, db).tick() == []
    assert len(smtp_server.recorder.messages) == 1
    # Off: nothing, whatever is done.
    assert SurveySender(_settings(db, smtp_server), db).tick() == []
    with db.transaction() as s, pytest.raises(CRMError, match="not a kind of follow-up"):
        followup_svc.create_follow_up(
            s, customer_id=sold.id, when="tomorrow 9am", actor=admin, tz="UTC", kind="party"
        )
