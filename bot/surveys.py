"""Satisfaction surveys by email: five signed one-click links, sent when a support thread we
answered has gone quiet (``CRM_CSAT_ENABLED``, ``CRM_CSAT_DELAY``, ``CRM_CSAT_MIN_DAYS``).

The links open crmbot's HTTP endpoint (``/csat``, served by bot.slack.runtime), which shows the
chosen rating with a comment box and records it on the page's button: a mail scanner that opens
links records nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.mail.smtp import DeliveryError, Mailer, OutgoingMail
from crm.config import Settings, reveal
from crm.db import Database
from crm.models import Customer, utcnow
from crm.services import surveys as svc
from crm.services.actor import Actor

logger = logging.getLogger(__name__)

CSAT_PATH = "/csat"
LABELS = {1: "very unhappy", 2: "unhappy", 3: "okay", 4: "happy", 5: "very happy"}


@dataclass(frozen=True)
class SurveySent:
    customer_id: int
    email: str
    status: str  # sent, failed, skipped
    detail: str = ""


class SurveySender:
    def __init__(
        self, settings: Settings, db: Database, *, mailer: Mailer | None = None, slack: Any = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.mailer = mailer or Mailer(settings)
        self.slack = (
            slack  # a slack_sdk WebClient: surveys also go to linked Slack Connect channels
        )

    @property
    def ready(self) -> str | None:
        """Why surveys cannot go out, or None."""
        s = self.settings
        if not s.csat_enabled:
            return "surveys are off (CRM_CSAT_ENABLED)"
        if not (s.public_url and s.secret_key):
            return "surveys need CRM_PUBLIC_URL and CRM_SECRET_KEY for their links"
        return None

    def links(self, survey_id: int, expires_at: datetime) -> dict[int, str]:
        s = self.settings
        assert s.public_url and s.secret_key
        base = f"{s.public_url.rstrip('/')}{CSAT_PATH}?t="
        return {
            r: base
            + svc.rating_token(
                reveal(s.secret_key) or "", survey_id=survey_id, rating=r, expires_at=expires_at
            )
            for r in svc.RATINGS
        }

    def post(self, channel: str, survey_id: int, expires_at: datetime) -> None:
        """The survey as five buttons in the customer's linked channel; a failure there is logged
        (the email carries the same survey)."""
        from slack_sdk.errors import SlackApiError

        from bot.slack.blocks.surveys import survey_message

        secret = reveal(self.settings.secret_key) or ""
        tokens = {
            r: svc.rating_token(secret, survey_id=survey_id, rating=r, expires_at=expires_at)
            for r in svc.RATINGS
        }
        payload = survey_message(tokens)
        try:
            self.slack.chat_postMessage(
                channel=channel, text=payload["text"], blocks=payload["blocks"]
            )
        except SlackApiError as exc:
            logger.warning("survey #%s to channel %s: %s", survey_id, channel, exc)

    def tick(self, now: datetime | None = None) -> list[SurveySent]:
        """Send the surveys now due; nothing when surveys are off."""
        if self.ready is not None:
            return []
        now = now or utcnow()
        s = self.settings
        out: list[SurveySent] = []
        with self.db.session() as session:
            due = svc.due_surveys(session, now=now, delay=s.csat_delay, min_days=s.csat_min_days)
        for d in due:
            with self.db.transaction() as session:
                survey = svc.open_survey(
                    session,
                    customer_id=d.customer_id,
                    email=d.email,
                    trigger=d.trigger,
                    thread_key=d.thread_key,
                    min_days=s.csat_min_days,
                    link_days=s.csat_link_days,
                    actor=Actor.system("csat"),
                    now=now,
                )
                customer = session.get(Customer, d.customer_id)
                channel = svc.linked_channel(session, d.customer_id)
            if survey is None or survey.id is None:
                out.append(SurveySent(d.customer_id, d.email, "skipped", "surveyed recently"))
                continue
            links = self.links(survey.id, survey.expires_at)
            if channel and self.slack is not None:
                self.post(channel, survey.id, survey.expires_at)
            name = (customer.name if customer else "").split(" ")[0]
            lines = [
                f"Hello {name}," if name else "Hello,",
                "",
                "How happy are you with the help you got from us?",
                "",
            ]
            lines += [f"{r} - {LABELS[r]}: {links[r]}" for r in sorted(links, reverse=True)]
            lines += ["", "One click is enough; you can add a comment on the page if you like."]
            try:
                sent = self.mailer.deliver(
                    OutgoingMail(
                        to=[d.email],
                        subject="How did we do?",
                        text="\n".join(lines) + "\n",
                        headers={"X-Crmbot-Survey": str(survey.id)},
                    )
                )
            except DeliveryError as exc:
                with self.db.transaction() as session:
                    svc.mark_survey_sent(
                        session, survey_id=survey.id, message_id=None, failed=str(exc)
                    )
                out.append(SurveySent(d.customer_id, d.email, "failed", str(exc)))
                continue
            with self.db.transaction() as session:
                svc.mark_survey_sent(session, survey_id=survey.id, message_id=sent.message_id)
            out.append(SurveySent(d.customer_id, d.email, "sent"))
        return out
