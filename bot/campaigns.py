"""Campaign mail: the campaign's Jinja2 template, and sending it once to each treated customer.

Each recipient is claimed in the database before the mail goes out (the claim used by the
digests), so two processes sending the same campaign at once send each mail once. Sends are
spread under ``CRM_CAMPAIGN_RATE_PER_MINUTE``. The control arm is never read here: only
treated members are ever pending.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from bot.mail.smtp import DeliveryError, Mailer, OutgoingMail
from crm.config import Settings, reveal
from crm.db import Database
from crm.models import Customer
from crm.services import campaigns as svc
from crm.services import digest_runs
from crm.services.actor import Actor
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

UNSUBSCRIBE_PATH = "/campaigns/unsubscribe"  # served by bot.slack.runtime
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

# What a template may use, with made-up values to check it before anything is stored.
_SAMPLE = {
    "customer": {
        "name": "Ada Example",
        "company": "Example Ltd",
        "first_name": "Ada",
        "email": "ada@example.com",
    },
    "campaign": {"name": "sample"},
    "unsubscribe": "mailto:unsubscribe@example.com",
}


def split_template(source: str) -> tuple[str | None, str]:
    """A template file may start with a ``Subject: ...`` line; (subject, body)."""
    first, _, rest = source.partition("\n")
    if first.lower().startswith("subject:"):
        return first.split(":", 1)[1].strip() or None, rest.lstrip("\n")
    return None, source


def check_template(subject: str, body: str) -> None:
    """CRMError (one line) when the subject or the body does not render."""
    for what, text in (("subject", subject), ("template", body)):
        try:
            _env.from_string(text).render(**_SAMPLE)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f" (line {line})" if line and what == "template" else ""
            raise CRMError(
                f"The {what} has an error{where}: {exc.message or exc}.",
                hint="Template variables: customer.name, customer.company, customer.first_name, "
                "campaign.name, unsubscribe.",
            ) from None
    if not body.strip():
        raise CRMError("The template is empty.", hint="Write the mail's text in the template file.")


def render(
    text: str, *, customer: Customer, email: str, campaign_name: str, unsubscribe: str
) -> str:
    name = customer.name or ""
    context: dict[str, Any] = {
        "customer": {
            "name": name,
            "company": customer.company or "",
            "first_name": name.split(" ")[0],
            "email": email,
        },
        "campaign": {"name": campaign_name},
        "unsubscribe": unsubscribe,
    }
    return _env.from_string(text).render(**context)


@dataclass
class SendResult:
    campaign: str
    dry_run: bool
    sent: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    elsewhere: int = 0  # claimed by another process


class CampaignSender:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        mailer: Mailer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        holder: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.mailer = mailer or Mailer(settings)
        self.sleep = sleep
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"

    def unsubscribe(self, email: str) -> tuple[str, dict[str, str]]:
        """The footer link and the List-Unsubscribe headers for one campaign mail."""
        mailto = f"mailto:{parseaddr(self.settings.smtp_from)[1]}?subject={quote('unsubscribe')}"
        s = self.settings
        if s.public_url and s.secret_key:
            token = svc.opt_out_token(reveal(s.secret_key) or "", email=email)
            url = f"{s.public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t={token}"
            return url, {
                "List-Unsubscribe": f"<{url}>, <{mailto}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        return mailto, {"List-Unsubscribe": f"<{mailto}>"}

    def send(self, name: str, *, actor: Actor, dry_run: bool = False) -> SendResult:
        actor.require_manager("send campaigns")
        with self.db.session() as session:
            campaign = svc.get_campaign(session, name)
            recipients = svc.pending_recipients(session, campaign.id)  # type: ignore[arg-type]
        result = SendResult(campaign.name, dry_run)
        if dry_run:
            with self.db.session() as session:
                for r in recipients:
                    if not r.email:
                        result.skipped.append((r.customer_name, "no email address"))
                    elif svc.is_opted_out(session, r.email):
                        result.skipped.append((r.email, "opted out"))
                    else:
                        result.sent.append(r.email)
            return result
        with self.db.transaction() as session:
            campaign = svc.start_sending(session, name=name, actor=actor)
        gap = 60.0 / self.settings.campaign_rate_per_minute
        last_send: float | None = None
        for r in recipients:
            job, key = f"campaign:{campaign.id}", f"customer:{r.customer_id}"
            with self.db.transaction() as session:
                claim = digest_runs.claim(
                    session, job=job, period="send", recipient=key, holder=self.holder
                )
            if claim is None:
                result.elsewhere += 1
                continue
            with self.db.session() as session:
                opted = bool(r.email) and svc.is_opted_out(session, r.email or "")
                customer = session.get(Customer, r.customer_id)
            reason = "no email address" if not r.email else "opted out" if opted else None
            if reason or customer is None:
                with self.db.transaction() as session:
                    digest_runs.mark_skipped(
                        session, claim=claim, reason=reason or "customer deleted"
                    )
                    svc.skip_recipient(
                        session, member_id=r.member_id, reason=reason or "customer deleted"
                    )
                result.skipped.append((r.email or r.customer_name, reason or "customer deleted"))
                continue
            assert r.email is not None and customer is not None
            link, headers = self.unsubscribe(r.email)
            try:
                subject = render(
                    campaign.subject,
                    customer=customer,
                    email=r.email,
                    campaign_name=campaign.name,
                    unsubscribe=link,
                )
                body = render(
                    campaign.template,
                    customer=customer,
                    email=r.email,
                    campaign_name=campaign.name,
                    unsubscribe=link,
                )
                if last_send is not None:
                    wait = gap - (self.clock() - last_send)
                    if wait > 0:
                        self.sleep(wait)
                last_send = self.clock()
                sent = self.mailer.deliver(
                    OutgoingMail(
                        to=[r.email],
                        subject=subject,
                        text=body,
                        headers={**headers, "X-Crmbot-Campaign": campaign.name},
                    )
                )
            except (DeliveryError, TemplateError) as exc:
                logger.warning("campaign %s to %s failed: %s", campaign.name, r.email, exc)
                with self.db.transaction() as session:
                    digest_runs.mark_failed(session, claim=claim, error=str(exc))
                result.failed.append((r.email, str(exc)))
                continue
            with self.db.transaction() as session:
                svc.record_sent(
                    session,
                    campaign=campaign,
                    recipient=r,
                    message_id=sent.message_id,
                    subject=subject,
                    body=body,
                    actor=actor,
                )
                digest_runs.mark_sent(session, claim=claim, meta={"message_id": sent.message_id})
            result.sent.append(r.email)
        with self.db.transaction() as session:
            svc.finish_sending(session, campaign_id=campaign.id)  # type: ignore[arg-type]
        return result
