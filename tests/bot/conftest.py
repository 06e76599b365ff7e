"""Fixtures for the bot's tests: a fake Slack Web API, the people in it, and the Slack app served
on a local port (see tests/bot/slack/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.handlers.common import forget_authors, forget_readers
from crm.config import Settings
from crm.db import Database
from crm.models import User
from tests.bot.slack.fake_slack import FakeSlack, slack_user
from tests.bot.slack.harness import PEOPLE, SECRET, SlackClientSim, served


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    for uid, (name, email, _role) in PEOPLE.items():
        fake.users[uid] = slack_user(uid, name, email)
    fake.users["UNEW00001"] = slack_user(
        "UNEW00001", "Nora New", "nora@ourco.com", tz="America/New_York"
    )
    fake.users["UEXT00001"] = slack_user(
        "UEXT00001", "Joe Customer", "joe@acme.com", team="TACME0001", stranger=True
    )
    fake.start()
    forget_authors()
    forget_readers()
    yield fake
    fake.stop()


@pytest.fixture
def slack_settings(db: Database, fake_slack: FakeSlack) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db.url,
        timezone="Europe/Berlin",
        internal_domains=["ourco.com"],
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=fake_slack.api_url,
        http_port=0,
    )


@pytest.fixture
def people(db: Database) -> dict[str, User]:
    made: dict[str, User] = {}
    with db.transaction() as session:
        for uid, (name, email, role) in PEOPLE.items():
            user = User(
                name=name, email=email, slack_user_id=uid, role=role, timezone="Europe/Berlin"
            )
            session.add(user)
            session.flush()
            made[uid] = user
    return made


@pytest.fixture
def slack(
    db: Database, slack_settings: Settings, fake_slack: FakeSlack, people: dict[str, User]
) -> Iterator[SlackClientSim]:
    """The production set-up: Slack is answered at ack(); the listener goes on after that."""
    with served(db, slack_settings, fake_slack, answer_on_ack=True) as sim:
        yield sim


@pytest.fixture
def slack_sync(
    db: Database, slack_settings: Settings, fake_slack: FakeSlack, people: dict[str, User]
) -> Iterator[SlackClientSim]:
    """Listeners finish before the HTTP answer, so a test can check the store right after."""
    with served(db, slack_settings, fake_slack, answer_on_ack=False) as sim:
        yield sim
