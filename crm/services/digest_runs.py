"""Digest sends, claimed in the database so each (job, period, recipient) goes out once.

A sender first claims the send (a unique row); only the claimant sends. Restarts, misfires
and several replicas racing for the same period therefore send once. A failed delivery is
recorded with its error and retried up to ``max_attempts``; a claim whose sender vanished
mid-send (crash) is taken over after ``stale_after`` and retried, so a digest is never
silently dropped. (If the crash came after the mail left but before it was marked sent,
that one digest can go out twice: we prefer that to losing it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from crm.models import DigestOptOut, DigestRun, User, utcnow
from crm.services import signing
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.errors import CRMError

CLAIMED, SENT, FAILED, SKIPPED = "claimed", "sent", "failed", "skipped"
DIGEST_KINDS = ("churn", "followups", "segments")
CHANNELS = ("email", "slack")


@dataclass(frozen=True)
class Claim:
    run_id: int
    job: str
    period: str
    recipient: str
    attempt: int
    # What an earlier failed attempt recorded (e.g. how many parts of a long message went out).
    progress: dict[str, Any] | None = None


def claim(
    session: Session,
    *,
    job: str,
    period: str,
    recipient: str,
    holder: str,
    now: datetime | None = None,
    max_attempts: int = 5,
    stale_after: timedelta = timedelta(minutes=15),
) -> Claim | None:
    """Claim one send; None when it was sent already, is being sent, or has used up its attempts."""
    now = now or utcnow()
    try:
        with session.begin_nested():
            run = DigestRun(job=job, period=period, recipient=recipient, status=CLAIMED, attempts=1,
                            claimed_by=holder[:200], claimed_at=now)
            session.add(run)
            session.flush()
        return Claim(run.id, job, period, recipient, 1)  # type: ignore[arg-type]
    except IntegrityError:
        pass
    existing = session.exec(
        select(DigestRun).where(DigestRun.job == job, DigestRun.period == period, DigestRun.recipient == recipient)
    ).one()
    backoff = retry_backoff(existing.attempts)
    retryable = (existing.status == FAILED and existing.claimed_at <= now - backoff) or (
        existing.status == CLAIMED and existing.claimed_at < now - stale_after)
    if not retryable or existing.attempts >= max_attempts:
        return None
    # Compare-and-set on (status, attempts): of two replicas retrying at once, one wins.
    result = session.execute(
        sa.update(DigestRun)
        .where(col(DigestRun.id) == existing.id, DigestRun.status == existing.status,
               DigestRun.attempts == existing.attempts)
        .values(status=CLAIMED, attempts=existing.attempts + 1, claimed_by=holder[:200], claimed_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Claim(existing.id, job, period, recipient, existing.attempts + 1, existing.meta)  # type: ignore[arg-type]


def retry_backoff(attempts: int) -> timedelta:
    """Wait 1, 2, 4... minutes (at most an hour) before trying a failed send again."""
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


def mark_sent(session: Session, *, claim: Claim, now: datetime | None = None, meta: dict[str, object] | None = None) -> None:
    session.execute(
        sa.update(DigestRun).where(col(DigestRun.id) == claim.run_id)
        .values(status=SENT, sent_at=now or utcnow(), last_error=None, meta=meta)
    )


def mark_skipped(session: Session, *, claim: Claim, reason: str) -> None:
    """Nothing to send (an empty digest, an opted-out recipient): recorded so it is not retried."""
    session.execute(
        sa.update(DigestRun).where(col(DigestRun.id) == claim.run_id).values(status=SKIPPED, last_error=reason[:2000])
    )


def mark_failed(session: Session, *, claim: Claim, error: str, progress: dict[str, Any] | None = None) -> None:
    values: dict[str, Any] = {"status": FAILED, "last_error": error[:2000]}
    if progress is not None:
        values["meta"] = progress
    session.execute(sa.update(DigestRun).where(col(DigestRun.id) == claim.run_id).values(**values))


def retryable_runs(session: Session, *, now: datetime | None = None, max_attempts: int = 5,
                   stale_after: timedelta = timedelta(minutes=15)) -> list[DigestRun]:
    """Failed sends (and abandoned claims) that still have attempts left."""
    now = now or utcnow()
    stmt = select(DigestRun).where(
        DigestRun.attempts < max_attempts,
        sa.or_(DigestRun.status == FAILED, sa.and_(DigestRun.status == CLAIMED, DigestRun.claimed_at < now - stale_after)),
    ).order_by(col(DigestRun.id))
    return list(session.exec(stmt))


def last_sent(session: Session, *, job: str, recipient: str | None = None) -> DigestRun | None:
    """The latest send of ``job`` that went out to ``recipient`` (to anyone when None): what a
    new digest compares with, so "since your last digest" means the last one that arrived."""
    stmt = select(DigestRun).where(DigestRun.job == job, DigestRun.status == SENT)
    if recipient is not None:
        stmt = stmt.where(DigestRun.recipient == recipient)
    stmt = stmt.order_by(col(DigestRun.sent_at).desc(), col(DigestRun.id).desc()).limit(1)
    return session.exec(stmt).first()


def history(session: Session, *, job: str | None = None, limit: int | None = 50) -> list[DigestRun]:
    """Sends, newest first; ``limit=None`` for all of them."""
    stmt = select(DigestRun)
    if job:
        stmt = stmt.where(DigestRun.job == job)
    return list(session.exec(stmt.order_by(col(DigestRun.id).desc()).limit(limit)))


def count_history(session: Session, *, job: str | None = None) -> int:
    stmt = select(func.count()).select_from(DigestRun)
    if job:
        stmt = stmt.where(DigestRun.job == job)
    return int(session.exec(stmt).one())


def record_manual_send(
    session: Session, *, actor: Actor, kind: str, period: str, recipients: list[str]
) -> None:
    """Before a digest goes out outside its schedule (``crmbot digest send``): only managers
    and admins send to the team, and the audit trail names who did."""
    _check(kind, "email")
    actor.require_manager("send digests")
    record_event(
        session,
        actor=actor,
        action="send_now",
        entity="digest",
        entity_id=kind,
        after={"period": period, "recipients": recipients},
    )


def _check(kind: str, channel: str) -> None:
    if kind not in DIGEST_KINDS:
        raise CRMError(f"{kind!r} is not a digest.", hint="Digests: " + ", ".join(DIGEST_KINDS) + ".")
    if channel not in CHANNELS:
        raise CRMError(f"{channel!r} is not a delivery channel.", hint="Use email or slack.")


def opted_out(session: Session, *, user_id: int, kind: str, channel: str) -> bool:
    return session.exec(
        select(DigestOptOut.id).where(DigestOptOut.user_id == user_id, DigestOptOut.kind == kind, DigestOptOut.channel == channel)
    ).first() is not None


def set_subscription(session: Session, *, user: User, kind: str, channel: str, subscribed: bool, actor: Actor) -> bool:
    """Opt a user in or out of one digest on one channel; users may change their own, admins anyone's."""
    _check(kind, channel)
    if actor.user_id != user.id:
        actor.require_admin("change someone else's digest subscriptions")
    current = session.exec(
        select(DigestOptOut).where(DigestOptOut.user_id == user.id, DigestOptOut.kind == kind, DigestOptOut.channel == channel)
    ).first()
    if subscribed and current is not None:
        session.delete(current)
    elif not subscribed and current is None:
        session.add(DigestOptOut(user_id=user.id, kind=kind, channel=channel))  # type: ignore[arg-type]
    else:
        return False
    session.flush()
    record_event(session, actor=actor, action="subscribe" if subscribed else "unsubscribe", entity="user",
                 entity_id=user.id, after={"digest": kind, "channel": channel})
    return True


def unsubscribe_token(secret: str, *, user_id: int, kind: str, channel: str) -> str:
    """A signed token for a one-click unsubscribe link (user, digest, channel); it does not expire."""
    _check(kind, channel)
    return signing.sign(secret, f"{user_id}:{kind}:{channel}")


def read_unsubscribe_token(secret: str, token: str) -> tuple[int, str, str]:
    """(user id, digest, channel) from a token made by ``unsubscribe_token``; CRMError if it was altered."""
    bad = CRMError("This unsubscribe link is not valid.", hint="Ask an admin to change your digest settings.")
    payload = signing.verify(secret, token)
    if payload is None:
        raise bad
    try:
        user_id, kind, channel = payload.split(":")
        _check(kind, channel)
        return int(user_id), kind, channel
    except ValueError:
        raise bad from None


def customer_link_token(secret: str, *, user_id: int, customer_id: int) -> str:
    """A signed token for a digest email's link to a customer: opening it shows that customer to
    that user (in their Slack Home tab) and to nobody else, so it needs no expiry."""
    return signing.sign(secret, f"open:{user_id}:{customer_id}")


def read_customer_link_token(secret: str, token: str) -> tuple[int, int]:
    """(user id, customer id) from a token made by ``customer_link_token``; CRMError if altered."""
    bad = CRMError("This link is not valid.", hint="Open the customer from Slack with /crm show.")
    payload = signing.verify(secret, token)
    if payload is None:
        raise bad
    try:
        purpose, user_id, customer_id = payload.split(":")
        if purpose != "open":
            raise bad
        return int(user_id), int(customer_id)
    except ValueError:
        raise bad from None
