"""The real SMTP server (aiosmtpd) of the digest tests, for campaign mail."""

from tests.bot.digests.conftest import smtp_server, tls_files  # noqa: F401  (fixtures)
