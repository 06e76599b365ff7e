"""Scheduled jobs: digests (sent once per period and recipient) and the nightly analytics refresh.

APScheduler drives a one-minute tick. Each tick asks, for every digest and recipient, which
scheduled time (cron, in the team's or the rep's time zone) most recently passed; if it passed
within the misfire grace, the send for that (digest, period, recipient) is claimed in the
database and, if the claim is ours, sent. So:

- restarts and several replicas send each digest once (the claim is a unique row);
- after downtime, only the latest missed period is sent, and only within the grace;
- a failed delivery is recorded and retried on later ticks, up to a limit.

``tick(now)`` takes the clock as an argument so tests drive it directly.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import Session, col, select

from bot import digests
from bot.mail.smtp import DeliveryError, InlineImage, Mailer, OutgoingMail, Sent
from bot.slack.blocks.digests import digest_messages
from bot.slack.links import app_home_link
from crm.config import Settings, reveal
from crm.db import Database
from crm.models import Role, User, utcnow
from crm.services import digest_runs
from crm.services.actor import Actor

T = TypeVar("T")
logger = logging.getLogger(__name__)

TEAM_KINDS = ("churn", "segments")


class ConfigError(ValueError):
    """A schedule in the settings cannot be read."""


def cron(expr: str, tz: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone=ZoneInfo(tz))
    except ValueError as exc:
        raise ConfigError(f"{expr!r} is not a cron expression (minute hour day month weekday): {exc}") from exc


def latest_fire_time(trigger: CronTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The last time ``trigger`` fired at or before ``now``, if that is within ``grace``."""
    fire = trigger.get_next_fire_time(None, now - grace)
    latest = None
    # Bounded, and stops when the trigger stops advancing: around a DST change APScheduler can
    # hand back the same local time again (the repeated autumn hour).
    for _ in range(10_000):
        if fire is None or fire > now or (latest is not None and fire <= latest):
            break
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


@dataclass(frozen=True)
class Recipient:
    key: str  # "email:addr", "slack:U123" (DM), "channel:C123"
    user: User | None = None

    @property
    def channel(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def address(self) -> str:
        return self.key.split(":", 1)[1]


@dataclass
class Delivery:
    kind: str
    period: str
    recipient: str
    status: str  # sent, skipped, failed, already, dry-run
    detail: str = ""
    outbox_file: str | None = None  # without SMTP an email is written here instead of sent

    def describe(self) -> str:
        """One line for people: what happened to this recipient's digest."""
        if self.status == "sent" and self.outbox_file:
            return f"{self.recipient}: written to {self.outbox_file} (no SMTP server is set)"
        return f"{self.recipient}: {self.status}" + (f" - {self.detail}" if self.detail else "")


class SlackPoster:
    """Posts digests to channels and DMs; rate limits and 5xx are retried by slack_sdk."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        if client is None:
            from slack_sdk import WebClient
            from slack_sdk.http_retry.builtin_handlers import (
                ConnectionErrorRetryHandler,
                RateLimitErrorRetryHandler,
                ServerErrorRetryHandler,
            )

            kwargs: dict[str, Any] = {"token": reveal(settings.slack_bot_token)}
            if settings.slack_api_url:
                kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
            client = WebClient(**kwargs)
            client.retry_handlers.extend([RateLimitErrorRetryHandler(max_retry_count=3),
                                          ServerErrorRetryHandler(max_retry_count=2),
                                          ConnectionErrorRetryHandler(max_retry_count=2)])
        self.client = client

    def post(self, recipient: Recipient, messages: list[dict[str, Any]], *, already_sent: int = 0) -> str:
        """Post the messages in order, skipping the first ``already_sent`` (a retry resumes)."""
        from slack_sdk.errors import SlackApiError

        sent = already_sent
        try:
            channel = recipient.address
            if recipient.channel == "slack":
                opened = self.client.conversations_open(users=recipient.address)
                channel = opened["channel"]["id"]
            last = ""
            for message in messages[already_sent:]:
                last = self.client.chat_postMessage(channel=channel, text=message["text"], blocks=message["blocks"])["ts"]
                sent += 1
            return last
        except SlackApiError as exc:
            raise DeliveryError(f"Slack: {exc.response.get('error', exc)}", progress={"parts_sent": sent}) from exc
        except OSError as exc:
            raise DeliveryError(f"Slack: {exc}", progress={"parts_sent": sent}) from exc


class DigestService:
    """Builds, claims and delivers digests."""

    def __init__(self, settings: Settings, db: Database, *, mailer: Mailer | None = None,
                 slack: SlackPoster | None = None, holder: str | None = None) -> None:
        self.settings = settings
        self.db = db
        self.mailer = mailer or Mailer(settings)
        self.slack = slack if slack is not None else (SlackPoster(settings) if settings.slack_bot_token else None)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.grace = timedelta(minutes=settings.digest_misfire_grace_minutes)
        self.triggers = {
            "churn": settings.churn_digest_cron,
            "followups": settings.followups_digest_cron,
            "segments": settings.segments_digest_cron,
        }
        for expr in self.triggers.values():
            cron(expr, settings.timezone)  # fail at start-up, not at 8 am

    # -- recipients

    def all_recipients(self, session: Session) -> dict[str, list[Recipient]]:
        """Who receives each digest, from one read of the users."""
        users = list(session.exec(select(User).where(User.active == True).order_by(col(User.id))))  # noqa: E712
        return {kind: self._recipients(users, kind) for kind in digests.KINDS}

    def _recipients(self, users: list[User], kind: str) -> list[Recipient]:
        out: list[Recipient] = []
        if kind == "followups":
            for user in users:
                if user.role == Role.viewer:
                    continue
                if user.slack_user_id and self.slack is not None:
                    out.append(Recipient(f"slack:{user.slack_user_id}", user))
                if user.email:
                    out.append(Recipient(f"email:{user.email}", user))
            return out
        channel = self.settings.churn_digest_channel if kind == "churn" else self.settings.segments_digest_channel
        if channel and self.slack is not None:
            out.append(Recipient(f"channel:{channel}"))
        seen: set[str] = set()
        for user in users:
            if user.role in (Role.manager, Role.admin) and user.email and user.email not in seen:
                seen.add(user.email)
                out.append(Recipient(f"email:{user.email}", user))
        extra = self.settings.churn_digest_emails if kind == "churn" else self.settings.segments_digest_emails
        out.extend(Recipient(f"email:{e}") for e in extra if e not in seen)
        return out

    # -- content

    def build(self, session: Session, kind: str, recipient: Recipient, now: datetime) -> digests.Digest:
        """The digest for one recipient, with changes since the last one that reached them."""
        last = digests.last_digest(session, kind, recipient.key)
        return digests.build_digest(
            session, self.settings, kind, now=now, user=recipient.user, last=last
        )

    def _unsubscribe(self, kind: str, recipient: Recipient) -> tuple[str, dict[str, str]]:
        """The footer link and the List-Unsubscribe headers for one email."""
        from email.utils import parseaddr

        address = self.settings.digest_unsubscribe_mailto or self.settings.smtp_from
        mailto = f"mailto:{parseaddr(address)[1]}?subject={quote(f'unsubscribe {kind}')}"
        s = self.settings
        if s.public_url and s.secret_key and recipient.user is not None and recipient.user.id is not None:
            token = digest_runs.unsubscribe_token(reveal(s.secret_key), user_id=recipient.user.id, kind=kind, channel="email")
            url = f"{s.public_url.rstrip('/')}/digests/unsubscribe?t={token}"
            return url, {"List-Unsubscribe": f"<{url}>, <{mailto}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        return mailto, {"List-Unsubscribe": f"<{mailto}>"}

    def customer_link(self, recipient: Recipient) -> Callable[[int], str] | None:
        """Where a customer's name in this recipient's email opens, when Slack is on: through
        crmbot's endpoint, which shows the customer's card in the recipient's Home tab, when the
        public URL is set and they have a Slack id; else the app's Home tab itself."""
        if self.slack is None:
            return None
        home = app_home_link(self.slack.client)
        if home is None:
            return None
        s, user = self.settings, recipient.user
        secret, public = reveal(s.secret_key), s.public_url
        user_id = user.id if user is not None and user.slack_user_id else None
        if not (secret and public and user_id is not None):
            return lambda _cid: home
        base, uid = f"{public.rstrip('/')}{digests.OPEN_CUSTOMER_PATH}?t=", user_id

        def link(cid: int) -> str:
            return base + digest_runs.customer_link_token(secret, user_id=uid, customer_id=cid)

        return link

    def deliver(
        self, kind: str, recipient: Recipient, digest: digests.Digest, *, already_sent: int = 0
    ) -> Sent:
        if recipient.channel == "email":
            unsubscribe, unsubscribe_headers = self._unsubscribe(kind, recipient)
            link = self.customer_link(recipient)
            images = [InlineImage(cid=f"chart-{kind}@crmbot", data=digest.chart_png)] if digest.chart_png else []
            mail = OutgoingMail(
                to=[recipient.address],
                subject=f"{digest.title} · {digest.generated_at.astimezone(ZoneInfo(digest.tz)):%a %d %b}",
                text=digests.render_text(digest, unsubscribe=unsubscribe, customer_link=link),
                html=digests.render_html(digest, unsubscribe=unsubscribe, customer_link=link,
                                         chart_cid=images[0].cid if images else None),
                images=images,
                headers={**unsubscribe_headers, "X-Crmbot-Digest": kind},
            )
            return self.mailer.deliver(mail)
        if self.slack is None:
            raise DeliveryError("Slack is off (no SLACK_BOT_TOKEN)")
        return Sent(self.slack.post(recipient, digest_messages(digest), already_sent=already_sent))

    # -- one send

    def send_one(self, kind: str, period: str, recipient: Recipient, now: datetime, *, dry_run: bool = False) -> Delivery:
        if dry_run:
            with self.db.session() as session:
                digest = self.build(session, kind, recipient, now)
            items = sum(len(s.items) for s in digest.visible_sections)
            detail = (
                "empty, would not be sent"
                if digest.empty
                else f"{items} item{'' if items == 1 else 's'}"
            )
            return Delivery(kind, period, recipient.key, "dry-run", detail)
        with self.db.transaction() as session:
            claim = digest_runs.claim(session, job=kind, period=period, recipient=recipient.key, holder=self.holder,
                                      now=now, max_attempts=self.settings.digest_max_attempts)
        if claim is None:
            return Delivery(kind, period, recipient.key, "already")
        try:
            with self.db.session() as session:
                if recipient.user is not None and recipient.user.id is not None and digest_runs.opted_out(
                        session, user_id=recipient.user.id, kind=kind, channel="email" if recipient.channel == "email" else "slack"):
                    digest = None
                else:
                    digest = self.build(session, kind, recipient, now)
            if digest is None or digest.empty:
                reason = "opted out" if digest is None else "nothing to report"
                with self.db.transaction() as session:
                    digest_runs.mark_skipped(session, claim=claim, reason=reason)
                return Delivery(kind, period, recipient.key, "skipped", reason)
            parts_sent = int((claim.progress or {}).get("parts_sent", 0))
            sent = self.deliver(kind, recipient, digest, already_sent=parts_sent)
        except DeliveryError as exc:
            logger.warning("digest %s for %s (%s) failed, attempt %s: %s", kind, recipient.key, period, claim.attempt, exc)
            with self.db.transaction() as session:
                digest_runs.mark_failed(session, claim=claim, error=str(exc), progress=exc.progress)
            return Delivery(kind, period, recipient.key, "failed", str(exc))
        except Exception as exc:  # a bug in one digest must not stop the others; it is recorded and retried
            logger.exception("digest %s for %s (%s) crashed", kind, recipient.key, period)
            with self.db.transaction() as session:
                digest_runs.mark_failed(session, claim=claim, error=f"{type(exc).__name__}: {exc}")
            return Delivery(kind, period, recipient.key, "failed", str(exc))
        # What the digest remembered (e.g. who it listed) comes back to the next one sent here.
        meta = {"ref": sent.message_id, **digest.memory}
        with self.db.transaction() as session:
            digest_runs.mark_sent(session, claim=claim, now=utcnow(), meta=meta)
        outbox = _shown_path(sent.outbox_file) if sent.outbox_file else None
        return Delivery(kind, period, recipient.key, "sent", sent.message_id, outbox_file=outbox)

    # -- schedule

    def due(self, kind: str, recipient: Recipient, now: datetime) -> str | None:
        """The period whose scheduled time most recently passed for this recipient, if within the grace."""
        tz = recipient.user.timezone if (kind == "followups" and recipient.user and recipient.user.timezone) else self.settings.timezone
        fire = latest_fire_time(cron(self.triggers[kind], tz), now, self.grace)
        return None if fire is None else fire.isoformat(timespec="minutes")

    def tick(self, now: datetime | None = None) -> list[Delivery]:
        now = now or utcnow()
        results: list[Delivery] = []
        with self.db.session() as session:
            by_kind = self.all_recipients(session)
        for kind, recipients in by_kind.items():
            for recipient in recipients:
                period = self.due(kind, recipient, now)
                if period is None:
                    continue
                try:
                    results.append(self.send_one(kind, period, recipient, now))
                except Exception:  # e.g. the database is briefly unavailable: the next tick tries again
                    logger.exception("digest %s for %s (%s) could not be processed", kind, recipient.key, period)
        try:
            results.extend(self.retry_failed(now, by_kind))
        except Exception:
            logger.exception("retrying failed digests did not work this time")
        return [r for r in results if r.status != "already"]

    def retry_failed(self, now: datetime, by_kind: dict[str, list[Recipient]]) -> list[Delivery]:
        with self.db.session() as session:
            runs = digest_runs.retryable_runs(session, now=now, max_attempts=self.settings.digest_max_attempts)
        everyone = {r.key: r for recipients in by_kind.values() for r in recipients}
        results = []
        for run in runs:
            recipient = everyone.get(run.recipient)
            if recipient is None:  # the user left or the channel was removed since
                continue
            results.append(self.send_one(run.job, run.period, recipient, now))
        return results

    def send_now(self, kind: str, *, now: datetime | None = None, dry_run: bool = False,
                 only: Callable[[Recipient], bool] | None = None,
                 actor: Actor | None = None) -> list[Delivery]:
        """``crmbot digest send``: an extra, manual period for every recipient of one digest;
        ``actor``, who asked for it, must be allowed to and is named in the audit trail."""
        now = now or utcnow()
        period = f"manual:{now.isoformat(timespec='seconds')}"
        with self.db.session() as session:
            recipients = [r for r in self.all_recipients(session)[kind] if only is None or only(r)]
        if actor is not None and not dry_run:
            with self.db.transaction() as session:
                digest_runs.record_manual_send(session, actor=actor, kind=kind, period=period,
                                               recipients=[r.key for r in recipients])
        return [self.send_one(kind, period, r, now, dry_run=dry_run) for r in recipients]


class SchedulerComponent:
    """The APScheduler inside ``crmbot run``."""

    name = "scheduler"

    def __init__(self, settings: Settings, db: Database, *, refresh: Callable[[datetime], Any] | None = None,
                 service: DigestService | None = None) -> None:
        self.settings = settings
        self.db = db
        self.service = service or DigestService(settings, db)
        self.refresh = refresh
        self.scheduler = BackgroundScheduler(timezone=ZoneInfo(settings.timezone))

    def _tick(self) -> None:
        for delivery in self.service.tick():
            logger.info("digest %s %s -> %s: %s %s", delivery.kind, delivery.period, delivery.recipient, delivery.status, delivery.detail)

    def _once_per_fire(
        self,
        job: str,
        expr: str,
        now: datetime,
        work: Callable[[], T],
        *,
        what: str,
        max_attempts: int,
        stale_after: timedelta,
    ) -> T | None:
        """Run ``work`` once for the latest fire time of the cron ``expr`` across replicas,
        claimed in the store as digests are; its result, or None when nothing was due, another
        replica has it, or it failed (recorded on the claim, so it is retried)."""
        fire = latest_fire_time(cron(expr, self.settings.timezone), now, self.service.grace)
        if fire is None:
            return None
        with self.db.transaction() as session:
            claimed = digest_runs.claim(
                session,
                job=job,
                period=fire.isoformat(timespec="minutes"),
                recipient="-",
                holder=self.service.holder,
                now=now,
                max_attempts=max_attempts,
                stale_after=stale_after,
            )
        if claimed is None:
            return None
        try:
            result = work()
        except Exception as exc:
            logger.exception("%s failed", what)
            with self.db.transaction() as session:
                error = f"{type(exc).__name__}: {exc}"
                digest_runs.mark_failed(session, claim=claimed, error=error)
            return None
        with self.db.transaction() as session:
            digest_runs.mark_sent(session, claim=claimed)
        return result

    def _refresh(self) -> None:
        refresh = self.refresh
        if refresh is None:
            return
        now = utcnow()
        # Claimed like a digest so only one replica refreshes a given night.
        self._once_per_fire(
            "analytics_refresh",
            self.settings.analytics_refresh_cron,
            now,
            lambda: refresh(now),
            what="analytics refresh",
            max_attempts=2,
            stale_after=timedelta(hours=2),
        )

    def _surveys(self) -> None:
        from bot.surveys import SurveySender

        slack = self.service.slack.client if self.service.slack is not None else None
        sender = SurveySender(self.settings, self.db, mailer=self.service.mailer, slack=slack)
        for sent in sender.tick():
            logger.info("survey to customer #%s: %s %s", sent.customer_id, sent.status, sent.detail)

    def _backup(self, now: datetime | None = None) -> Path | None:
        """The scheduled backup (CRM_BACKUP_CRON): once per fire time across replicas, into
        CRM_BACKUP_DIR, keeping the newest CRM_BACKUP_KEEP."""
        from crm.services import backups

        expr = self.settings.backup_cron
        if not expr:
            return None
        now = now or utcnow()

        def back_up() -> Path:
            folder = Path(self.settings.backup_dir).expanduser()
            target = folder / backups.scheduled_name(now)
            backups.make_backup(self.db, target, actor=Actor.system("scheduler"))
            removed = backups.prune_backups(folder, self.settings.backup_keep)
            logger.info(
                "backup written to %s (%d old backup(s) removed)", _shown_path(target), len(removed)
            )
            return target

        return self._once_per_fire(
            "backup", expr, now, back_up, what="scheduled backup", max_attempts=3,
            stale_after=timedelta(hours=6),
        )

    def _retention(self, now: datetime | None = None) -> int | None:
        """The nightly retention (CRM_RETENTION_*), once per fire time across replicas; returns
        the rows changed, or None when it was not due or another replica has it."""
        from crm.services import retention

        s = self.settings
        if not (
            s.retention_raw_mail_days or s.retention_interactions_days or s.retention_analytics_days
        ):
            return None
        when = now or utcnow()

        def apply() -> int:
            changed = 0
            while True:
                with self.db.transaction() as session:
                    done = retention.apply_batch(
                        session,
                        actor=Actor.system("scheduler"),
                        raw_mail_days=s.retention_raw_mail_days,
                        interactions_days=s.retention_interactions_days,
                        analytics_days=s.retention_analytics_days,
                        now=when,
                    )
                changed += done.total
                if not done.total:
                    break
            logger.info("retention applied: %d rows changed", changed)
            return changed

        return self._once_per_fire(
            "retention", s.retention_cron, when, apply, what="retention", max_attempts=3,
            stale_after=timedelta(hours=6),
        )

    def start(self) -> None:
        if self.settings.csat_enabled:
            self.scheduler.add_job(self._surveys, IntervalTrigger(minutes=5), id="csat", max_instances=1,
                                   coalesce=True)
        if (
            self.settings.retention_raw_mail_days
            or self.settings.retention_interactions_days
            or self.settings.retention_analytics_days
        ):
            cron(self.settings.retention_cron, self.settings.timezone)
            self.scheduler.add_job(
                self._retention, IntervalTrigger(minutes=5), id="retention", max_instances=1,
                coalesce=True,
            )
        if self.settings.backup_cron:
            cron(self.settings.backup_cron, self.settings.timezone)  # fail now, not at night
            self.scheduler.add_job(
                self._backup, IntervalTrigger(minutes=5), id="backup", max_instances=1, coalesce=True
            )
        self.scheduler.add_job(self._tick, IntervalTrigger(minutes=1), id="digests", max_instances=1, coalesce=True,
                               next_run_time=datetime.now(ZoneInfo(self.settings.timezone)))
        self.scheduler.add_job(self._refresh, IntervalTrigger(minutes=5), id="analytics_refresh", max_instances=1,
                               coalesce=True)
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=False)


def scheduler_factory(settings: Settings, db: Database) -> SchedulerComponent:
    def refresh(now: datetime) -> Any:
        from crm.analytics.refresh import refresh as run_refresh
        from crm.services.actor import Actor

        return run_refresh(db, settings=settings, actor=Actor.system("scheduler"), cutoff=now)

    return SchedulerComponent(settings, db, refresh=refresh)


def _shown_path(path: Path) -> str:
    """A path as a person would type it here: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def iter_kinds(kind: str | None) -> Iterable[str]:
    return digests.KINDS if kind is None else (kind,)
