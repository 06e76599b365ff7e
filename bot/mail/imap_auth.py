"""Opening an authenticated IMAP connection from the settings.

TLS by default (implicit TLS on 993, or STARTTLS); plaintext only when the settings say so
explicitly. Password login, or XOAUTH2 with an access token printed by a configured
command (Gmail and Microsoft 365 no longer accept passwords; token refresh is the job of a
tool made for it, e.g. ``oauth2l`` or a provider's CLI).
"""

from __future__ import annotations

import logging
import shlex
import ssl
import subprocess

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from crm.config import Settings
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)


class MailConfigError(CRMError):
    """The IMAP settings cannot work (missing host, bad credentials, token command fails)."""


def mailbox_name(settings: Settings) -> str:
    """The mailbox's name in the CRM; interactions from it have source ``imap:<name>``."""
    if settings.imap_mailbox_name:
        return settings.imap_mailbox_name[:200]
    user = settings.imap_user or "imap"
    return f"{user}@{settings.imap_host}/{settings.imap_folder}"[:200]


def oauth2_token(command: str, timeout: float = 30.0) -> str:
    """Run the configured token command; its first non-empty output line is the token."""
    try:
        done = subprocess.run(
            shlex.split(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MailConfigError(f"The IMAP OAuth2 token command could not run: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or "").strip().splitlines()[-1:] or [""]
        raise MailConfigError(
            f"The IMAP OAuth2 token command failed with status {done.returncode}. {detail[0]}"
        )
    token = next((line.strip() for line in done.stdout.splitlines() if line.strip()), "")
    if not token:
        raise MailConfigError("The IMAP OAuth2 token command printed no token.")
    return token


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.imap_ca_file or None)
    if not settings.imap_tls_verify:
        # An explicit opt-out, for a server with a self-signed certificate on a private network.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_settings(settings: Settings) -> None:
    if not settings.imap_host:
        raise MailConfigError("No IMAP server is configured.", hint="Set CRM_IMAP_HOST.")
    if not settings.imap_user:
        raise MailConfigError("No IMAP user is configured.", hint="Set CRM_IMAP_USER.")
    if not settings.imap_password and not settings.imap_oauth2_token_command:
        raise MailConfigError(
            "The IMAP login has neither a password nor an OAuth2 token command.",
            hint="Set CRM_IMAP_PASSWORD, or CRM_IMAP_OAUTH2_TOKEN_COMMAND for XOAUTH2.",
        )
    if settings.imap_processed_action == "move" and not settings.imap_processed_folder.strip():
        raise MailConfigError("CRM_IMAP_PROCESSED_FOLDER is empty but processed mail is moved.")


def connect(settings: Settings) -> IMAPClient:
    """A logged-in client (folder not selected yet). Login failures raise MailConfigError."""
    check_settings(settings)
    security = settings.imap_security
    port = settings.imap_port or (993 if security == "tls" else 143)
    context = ssl_context(settings) if security != "plaintext" else None
    client = IMAPClient(
        settings.imap_host,  # type: ignore[arg-type]
        port=port,
        ssl=security == "tls",
        ssl_context=context,
        timeout=settings.imap_timeout_seconds,
        use_uid=True,
    )
    try:
        if security == "starttls":
            client.starttls(context)
        if settings.imap_oauth2_token_command:
            token = oauth2_token(settings.imap_oauth2_token_command)
            client.oauth2_login(settings.imap_user, token)
        else:
            assert settings.imap_password is not None
            client.login(settings.imap_user, settings.imap_password.get_secret_value())
    except LoginError as exc:
        _close_quietly(client)
        raise MailConfigError(
            f"The IMAP server refused the login for {settings.imap_user}: {exc}",
            hint="Check CRM_IMAP_USER and the password or token.",
        ) from exc
    except BaseException:
        _close_quietly(client)
        raise
    return client


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection is being thrown away anyway
        try:
            client.shutdown()
        except Exception:
            logger.debug("IMAP shutdown failed", exc_info=True)
