"""Satisfaction surveys: who is due one, the signed single-use links, and recording a rating.

A survey is due when a customer's email thread got our reply and has been quiet since for
``csat_delay``, and the customer had no survey in the last ``csat_min_days``. Each of the
survey's five links is signed (survey, rating, expiry); a rating is recorded once, as an
interaction, and a tampered, replayed or expired link changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm.models import (
    Channel,
    ChannelLink,
    ContactKind,
    ContactPoint,
    Customer,
    Direction,
    FollowUp,
    FollowUpKind,
    FollowUpStatus,
    Interaction,
    Survey,
    utcnow,
)
from crm.services import signing
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.errors import CRMError

RATINGS = (1, 2, 3, 4, 5)
LOW = 2  # ratings at or below this are listed for follow-up
SOURCE = "csat"
LOOKBACK = timedelta(days=7)  # threads answered longer ago than delay + this are not surveyed


@dataclass(frozen=True)
class Due:
    customer_id: int
    thread_key: str | None
    email: str
    trigger: str = "support_reply"  # or "service_follow_up"


def due_surveys(
    session: Session, *, now: datetime, delay: timedelta, min_days: int, limit: int = 200
) -> list[Due]:
    """Customers whose latest email thread ends with our reply, quiet for ``delay``, after a
    message of theirs, and customers whose "service" follow-up was done in the last week (the
    thread ones first); none surveyed in the last ``min_days``."""
    i = Interaction
    last = (
        sa.select(col(i.thread_key), sa.func.max(col(i.occurred_at)).label("last_at"))
        .where(
            col(i.channel) == Channel.email,
            col(i.deleted_at).is_(None),
            col(i.thread_key).is_not(None),
        )
        .group_by(col(i.thread_key))
        .having(sa.func.max(col(i.occurred_at)) <= now - delay)
        .having(sa.func.max(col(i.occurred_at)) > now - delay - LOOKBACK)
        .subquery()
    )
    rows = session.execute(
        sa.select(col(i.customer_id), col(i.thread_key))
        .join(last, sa.and_(last.c.thread_key == i.thread_key, last.c.last_at == i.occurred_at))
        .where(col(i.direction) == Direction.outbound, col(i.source) != "campaign")
        .order_by(col(i.occurred_at))
    ).all()
    served = session.execute(
        sa.select(col(FollowUp.customer_id), sa.literal(None))
        .where(
            col(FollowUp.kind) == FollowUpKind.service,
            col(FollowUp.status) == FollowUpStatus.done,
            col(FollowUp.completed_at) <= now,
            col(FollowUp.completed_at) > now - LOOKBACK,
        )
        .order_by(col(FollowUp.completed_at))
    ).all()
    out: list[Due] = []
    seen: set[int] = set()
    since = now - timedelta(days=min_days)
    for customer_id, thread_key in [*rows, *served]:
        if customer_id in seen:
            continue
        seen.add(customer_id)
        if thread_key is not None:
            asked = session.exec(
                select(Interaction.id)
                .where(
                    Interaction.thread_key == thread_key,
                    col(Interaction.direction) == Direction.inbound,
                )
                .limit(1)
            ).first()
            if asked is None:
                continue
        if recently_surveyed(session, customer_id, since):
            continue
        email = session.exec(
            select(ContactPoint.value)
            .where(
                ContactPoint.customer_id == customer_id, col(ContactPoint.kind) == ContactKind.email
            )
            .order_by(col(ContactPoint.id))
        ).first()
        if email:
            trigger = "support_reply" if thread_key is not None else "service_follow_up"
            out.append(Due(customer_id, thread_key, email, trigger))
        if len(out) >= limit:
            break
    return out


def linked_channel(session: Session, customer_id: int) -> str | None:
    """The customer's linked (Slack Connect) channel, if any."""
    return session.exec(
        select(ChannelLink.channel_id)
        .where(ChannelLink.customer_id == customer_id)
        .order_by(col(ChannelLink.id))
    ).first()


def recently_surveyed(session: Session, customer_id: int, since: datetime) -> bool:
    return (
        session.exec(
            select(Survey.id)
            .where(Survey.customer_id == customer_id, col(Survey.created_at) > since)
            .limit(1)
        ).first()
        is not None
    )


def open_survey(
    session: Session,
    *,
    customer_id: int,
    email: str,
    trigger: str,
    min_days: int,
    link_days: int,
    actor: Actor,
    thread_key: str | None = None,
    now: datetime | None = None,
) -> Survey | None:
    """Store a survey for the customer, or None when they had one in the last ``min_days``.
    The customer's row is locked first, so two replicas never open two surveys for them."""
    now = now or utcnow()
    session.exec(select(Customer.id).where(Customer.id == customer_id).with_for_update()).first()
    if recently_surveyed(session, customer_id, now - timedelta(days=min_days)):
        return None
    survey = Survey(
        customer_id=customer_id,
        trigger=trigger,
        thread_key=thread_key,
        email=email,
        created_at=now,
        expires_at=now + timedelta(days=link_days),
    )
    session.add(survey)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="survey",
        entity="customer",
        entity_id=customer_id,
        after={"survey": survey.id, "trigger": trigger},
    )
    return survey


def mark_survey_sent(
    session: Session, *, survey_id: int, message_id: str | None, failed: str | None = None
) -> None:
    session.execute(
        sa.update(Survey)
        .where(col(Survey.id) == survey_id)
        .values(status="failed" if failed else "sent", message_id=message_id)
    )


# ---------------------------------------------------------------- links


def rating_token(secret: str, *, survey_id: int, rating: int, expires_at: datetime) -> str:
    """A signed link token: this survey, this rating, valid until ``expires_at``."""
    return signing.sign(secret, f"csat:{survey_id}:{rating}:{int(expires_at.timestamp())}")


def read_rating_token(secret: str, token: str, *, now: datetime | None = None) -> tuple[int, int]:
    """(survey id, rating); CRMError when the link was altered or has expired."""
    bad = CRMError("This survey link is not valid.")
    payload = signing.verify(secret, token)
    if payload is None:
        raise bad
    try:
        purpose, survey_id, rating, expires = payload.split(":")
        if purpose != "csat" or int(rating) not in RATINGS:
            raise bad
        if int(expires) < (now or utcnow()).timestamp():
            raise CRMError("This survey link has expired. Thank you all the same.")
        return int(survey_id), int(rating)
    except ValueError:
        raise bad from None


def record_rating(
    session: Session,
    *,
    survey_id: int,
    rating: int,
    comment: str | None = None,
    now: datetime | None = None,
) -> Interaction:
    """The customer's answer, once: it becomes an interaction. A second answer changes nothing."""
    now = now or utcnow()
    if rating not in RATINGS:
        raise CRMError("A rating is 1 to 5.")
    comment = (comment or "").strip()[:2000] or None
    # Compare-and-set: of two clicks racing, one records the answer.
    done = session.execute(
        sa.update(Survey)
        .where(
            col(Survey.id) == survey_id,
            col(Survey.answered_at).is_(None),
            col(Survey.expires_at) >= now,
        )
        .values(status="answered", answered_at=now, rating=rating, comment=comment)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise CRMError("This survey was answered already (or has expired). Thank you!")
    survey = session.get(Survey, survey_id)
    assert survey is not None
    interaction = Interaction(
        customer_id=survey.customer_id,
        channel=Channel.note,
        direction=Direction.inbound,
        occurred_at=now,
        subject="Satisfaction survey",
        body=f"Satisfaction {rating}/5" + (f": {comment}" if comment else ""),
        author=survey.email,
        source=SOURCE,
        external_id=f"survey:{survey_id}",
        thread_key=survey.thread_key,
        meta={"csat": rating, "survey_id": survey_id, **({"comment": comment} if comment else {})},
    )
    session.add(interaction)
    record_event(
        session,
        actor=Actor.system("survey-link"),
        action="rate",
        entity="customer",
        entity_id=survey.customer_id,
        after={"survey": survey_id, "rating": rating},
    )
    return interaction


@dataclass(frozen=True)
class Satisfaction:
    latest: int
    previous: int | None
    answered_at: datetime

    @property
    def trend(self) -> str:
        if self.previous is None:
            return "first rating"
        return (
            "up"
            if self.latest > self.previous
            else "down"
            if self.latest < self.previous
            else "steady"
        )


def satisfaction(session: Session, customer_id: int) -> Satisfaction | None:
    """The customer's latest rating and the one before it."""
    rows = session.exec(
        select(Survey.rating, Survey.answered_at)
        .where(Survey.customer_id == customer_id, col(Survey.rating).is_not(None))
        .order_by(col(Survey.answered_at).desc())
        .limit(2)
    ).all()
    if not rows:
        return None
    (latest, at), previous = rows[0], rows[1][0] if len(rows) > 1 else None
    return Satisfaction(int(latest or 0), previous, at)  # type: ignore[arg-type]


def low_scores(
    session: Session, *, since: datetime, owner_id: int | None = None, limit: int | None = 15
) -> list[tuple[int, str, int, str | None]]:
    """(customer id, name, rating, comment) of ratings at or below LOW since ``since``, newest
    first."""
    stmt = (
        select(Survey.customer_id, Customer.name, Survey.rating, Survey.comment)
        .join(Customer, col(Customer.id) == Survey.customer_id)
        .where(col(Survey.rating) <= LOW, col(Survey.answered_at) >= since)
        .order_by(col(Survey.answered_at).desc())
        .limit(limit)
    )
    if owner_id is not None:
        stmt = stmt.where(Customer.owner_id == owner_id)
    rows = session.exec(stmt).all()
    return [(int(c), n, int(r or 0), m) for c, n, r, m in rows]
