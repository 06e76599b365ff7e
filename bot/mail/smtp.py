"""Outgoing mail: SMTP with STARTTLS (or TLS) and auth, or an outbox folder of .eml files.

Messages are built with the standard library's ``EmailMessage`` (policy SMTP), which refuses
CR/LF in header values, so a customer name cannot inject headers.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from crm.config import Settings, reveal

logger = logging.getLogger(__name__)


class DeliveryError(Exception):
    """Sending failed; the message says why (the caller records it and retries later).

    ``progress`` says what did go out before the failure, so a retry can resume.
    """

    def __init__(self, message: str, *, progress: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.progress = progress


@dataclass(frozen=True)
class InlineImage:
    cid: str  # referenced from the HTML as src="cid:<cid>"
    data: bytes
    subtype: str = "png"


@dataclass
class OutgoingMail:
    to: Sequence[str]
    subject: str
    text: str
    html: str | None = None
    images: list[InlineImage] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    """One message that went out: its Message-ID and, without an SMTP server, its outbox file."""

    message_id: str
    outbox_file: Path | None = None


def _clean_header(value: str) -> str:
    # Belt and braces: EmailMessage refuses line breaks; we also fold them into spaces first so a
    # hostile customer name in a subject cannot fail the whole digest.
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def build_message(mail: OutgoingMail, *, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(_clean_header(a) for a in mail.to)
    msg["Subject"] = _clean_header(mail.subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # so auto-responders do not reply to digests
    for name, value in mail.headers.items():
        msg[name] = _clean_header(value)
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
        if mail.images:
            html_part = msg.get_payload()[-1]  # type: ignore[index]
            for image in mail.images:
                html_part.add_related(image.data, maintype="image", subtype=image.subtype, cid=f"<{image.cid}>")
    return msg


def valid_address(value: str) -> bool:
    try:
        name, addr = parseaddr(value)
        Address(addr_spec=addr)
    except (ValueError, IndexError):
        return False
    return "@" in addr


class Mailer:
    """Sends through SMTP when ``CRM_SMTP_HOST`` is set, else writes to the outbox folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def uses_outbox(self) -> bool:
        return not self.settings.smtp_host

    def send(self, mail: OutgoingMail) -> str:
        """Send one message; returns its Message-ID. Raises DeliveryError when it could not go out."""
        return self.deliver(mail).message_id

    def deliver(self, mail: OutgoingMail) -> Sent:
        """Send one message, saying where it went. Raises DeliveryError when it could not go out."""
        recipients = [a for a in mail.to if valid_address(a)]
        if not recipients:
            raise DeliveryError(f"no valid recipient in {list(mail.to)!r}")
        mail.to = recipients
        msg = build_message(mail, sender=self.settings.smtp_from)
        if self.uses_outbox:
            return self._to_outbox(msg)
        return Sent(self._to_smtp(msg, recipients))

    def _to_outbox(self, msg: EmailMessage) -> Sent:
        folder = Path(self.settings.outbox_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msg.as_bytes())
        tmp.replace(path)  # readers never see half a file
        logger.info("wrote %s to the outbox (%s)", msg["Subject"], path)
        return Sent(str(msg["Message-ID"]), path)

    def _to_smtp(self, msg: EmailMessage, recipients: list[str]) -> str:
        s = self.settings
        assert s.smtp_host is not None
        context = ssl.create_default_context(cafile=s.smtp_ca_file) if s.smtp_ca_file else ssl.create_default_context()
        try:
            if s.smtp_security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=context)
            else:
                client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            try:
                client.ehlo()
                if s.smtp_security == "starttls":
                    client.starttls(context=context)
                    client.ehlo()
                if s.smtp_username:
                    client.login(s.smtp_username, reveal(s.smtp_password) or "")
                refused = client.send_message(msg, to_addrs=[parseaddr(r)[1] for r in recipients])
            except BaseException:
                client.close()
                raise
            # The server has the message: a failed goodbye must not turn into a retry (a duplicate).
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {s.smtp_host}:{s.smtp_port}: {exc}") from exc
        if refused:
            logger.warning("SMTP refused some recipients: %s", refused)
            if len(refused) == len(recipients):
                raise DeliveryError(f"every recipient was refused: {refused}")
        return str(msg["Message-ID"])
