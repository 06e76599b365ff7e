"""The real SMTP server (aiosmtpd) of the digest tests, for survey mail."""

import pytest  # noqa: E402

from crm.config import Settings  # noqa: E402
from tests.bot.digests.conftest import smtp_server, tls_files  # noqa: F401  (fixtures)
from tests.bot.slack.harness import SECRET  # noqa: E402


@pytest.fixture
def slack_settings(db, fake_slack, tmp_path) -> Settings:
    """The Slack tests' settings, with surveys on and their links signed."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db.url,
        timezone="Europe/Berlin",
        internal_domains=["ourco.com"],
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=fake_slack.api_url,
        http_port=0,
        secret_key="k3y",
        public_url="http://127.0.0.1:1",
        csat_enabled=True,
        outbox_dir=str(tmp_path / "outbox"),
    )
