"""Campaigns: mail an audience, keep a random control group out, and measure the uplift.

- The audience comes from a segment of the latest analytics run, a list of customers, or a
  filter. A seeded random holdout of it is stored as the control arm when the campaign is
  created, and is never contacted.
- Sending is claimed per recipient in the database (as digests are), so each treated customer
  gets the campaign once however many processes send it; opted-out addresses are skipped.
- Every sent mail is stored as an outbound email interaction whose external id is its
  Message-ID, so mail capture threads a reply (In-Reply-To / References) to it.
- A response, in the window that opens when the first mail goes out, is a reply in that
  thread, a purchase, or a deal opened or won. The same window counts for both arms, so the
  control shows what would have happened anyway.
"""

from __future__ import annotations

import math
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm.models import (
    AnalyticsRun,
    Campaign,
    CampaignMember,
    CampaignOptOut,
    Channel,
    ContactKind,
    ContactPoint,
    Customer,
    CustomerSegment,
    CustomerStatus,
    Deal,
    DealStatus,
    Direction,
    Interaction,
    utcnow,
)
from crm.models.campaign import CONTROL, TREATMENT
from crm.services import signing
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.errors import CRMError, NotFound
from crm.services.keys import contact_digest, contact_digests
from crm.services.normalise import normalise_email

SOURCE = "campaign"
PENDING, SENT, SKIPPED = "pending", "sent", "skipped"
MAX_HOLDOUT = 0.9
Z95 = 1.959963984540054


# ---------------------------------------------------------------- reading what users type


def parse_holdout(value: str | float) -> float:
    """``10%``, ``10`` or ``0.1`` -> 0.1; between 0 and 90%."""
    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100
        else:
            share = float(text)
            share = share / 100 if share > 1 else share
    except ValueError:
        raise CRMError(f"{value!r} is not a holdout.", hint="Give a share such as 10%.") from None
    if not (0 <= share <= MAX_HOLDOUT) or math.isnan(share):
        raise CRMError(f"A holdout of {value} is out of range.", hint="Give 0% to 90%, e.g. 10%.")
    return share


def parse_window(value: str) -> int:
    """``14d``, ``2w`` or ``14`` -> days (1 to 365)."""
    m = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", value.lower())
    if not m:
        raise CRMError(f"{value!r} is not a window.", hint="Give days or weeks, e.g. 14d or 2w.")
    days = int(m.group(1)) * (7 if m.group(2) == "w" else 1)
    if not 1 <= days <= 365:
        raise CRMError(f"A window of {value} is out of range.", hint="Give 1 to 365 days.")
    return days


_FILTER_FIELDS = ("status", "tag", "domain", "company", "owner_id")


def _filter_clause(expr: str) -> list[sa.ColumnElement[bool]]:
    """``status=active, tag=vip`` -> SQL conditions (all must hold)."""
    clauses: list[sa.ColumnElement[bool]] = []
    for part in [p.strip() for p in re.split(r",|\band\b", expr) if p.strip()]:
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or key not in _FILTER_FIELDS or not value:
            raise CRMError(
                f"{part!r} is not a filter.",
                hint="Use field=value joined by commas; fields: " + ", ".join(_FILTER_FIELDS) + ".",
            )
        if key == "status":
            if value not in {s.value for s in CustomerStatus}:
                raise CRMError(
                    f"{value!r} is not a customer status.", hint="Use lead, active or churned."
                )
            clauses.append(col(Customer.status) == CustomerStatus(value))
        elif key == "tag":
            # Tags are a JSON list; matched as the quoted value in its text (both backends).
            clauses.append(sa.cast(Customer.tags, sa.Text).contains(f'"{value}"'))
        elif key == "owner_id":
            if not value.isdigit():
                raise CRMError(f"{value!r} is not a user id.", hint="Use owner_id=3.")
            clauses.append(col(Customer.owner_id) == int(value))
        else:
            clauses.append(sa.func.lower(getattr(Customer, key)) == value.lower())
    if not clauses:
        raise CRMError("The filter is empty.", hint="Use e.g. --filter status=active.")
    return clauses


def segment_names(session: Session) -> list[str]:
    run = _latest_run_id(session)
    if run is None:
        return []
    rows = session.exec(
        select(CustomerSegment.rfm_segment, CustomerSegment.cluster_name).where(
            CustomerSegment.run_id == run
        )
    )
    return sorted({n for pair in rows for n in pair if n})


def _latest_run_id(session: Session) -> int | None:
    return session.exec(
        select(AnalyticsRun.id)
        .where(AnalyticsRun.kind == "refresh", AnalyticsRun.status == "done")
        .order_by(col(AnalyticsRun.finished_at).desc(), col(AnalyticsRun.id).desc())
        .limit(1)
    ).first()


def audience_ids(
    session: Session,
    *,
    segment: str | None = None,
    customers: Sequence[int] | None = None,
    filter_expr: str | None = None,
) -> list[int]:
    """The customer ids of exactly one audience, sorted; CRMError when it is unknown or empty."""
    given = [x is not None for x in (segment, customers, filter_expr)]
    if sum(given) != 1:
        raise CRMError("Give one audience.", hint="Use --segment, --customers or --filter.")
    if segment is not None:
        run = _latest_run_id(session)
        names = segment_names(session)
        if segment not in names:
            raise NotFound(
                f"There is no segment {segment!r}.",
                hint=("Segments: " + ", ".join(names) + ".")
                if names
                else "Run `crmbot analytics refresh` first.",
            )
        ids = session.exec(
            select(CustomerSegment.customer_id).where(
                CustomerSegment.run_id == run,
                sa.or_(
                    col(CustomerSegment.rfm_segment) == segment,
                    col(CustomerSegment.cluster_name) == segment,
                ),
            )
        )
        found = sorted(set(ids))
    elif customers is not None:
        found = sorted(set(customers))
    else:
        found = sorted(
            cid
            for cid in session.exec(select(Customer.id).where(*_filter_clause(filter_expr or "")))
            if cid
        )
    if not found:
        raise CRMError(
            "That audience has no customers.", hint="Pick another segment, list or filter."
        )
    return found


# ---------------------------------------------------------------- creating


def split_arms(customer_ids: Sequence[int], *, holdout: float, seed: int) -> dict[int, str]:
    """A seeded random holdout: the same ids, share and seed always give the same control arm."""
    ids = sorted(customer_ids)
    rng = random.Random(seed)
    rng.shuffle(ids)
    n_control = round(len(ids) * holdout)
    return {cid: (CONTROL if i < n_control else TREATMENT) for i, cid in enumerate(ids)}


def _primary_emails(session: Session, customer_ids: Sequence[int]) -> dict[int, str]:
    emails: dict[int, str] = {}
    for i in range(0, len(customer_ids), 500):
        chunk = list(customer_ids[i : i + 500])
        rows = session.exec(
            select(ContactPoint.customer_id, ContactPoint.value)
            .where(ContactPoint.kind == ContactKind.email, col(ContactPoint.customer_id).in_(chunk))
            .order_by(col(ContactPoint.id))
        )
        for cid, value in rows:
            emails.setdefault(cid, value)
    return emails


def get_campaign(session: Session, name: str, *, for_update: bool = False) -> Campaign:
    stmt = select(Campaign).where(Campaign.name == name.strip())
    if for_update:
        stmt = stmt.with_for_update()
    found = session.exec(stmt).first()
    if found is None:
        names = list(session.exec(select(Campaign.name).order_by(col(Campaign.id).desc()).limit(5)))
        raise NotFound(
            f"There is no campaign {name!r}.",
            suggestions=names,
            hint=None if names else "Create one with `crmbot campaign create`.",
        )
    return found


def create_campaign(
    session: Session,
    *,
    name: str,
    customer_ids: Sequence[int],
    audience: dict[str, Any],
    subject: str,
    template: str,
    holdout: float,
    window_days: int,
    actor: Actor,
    seed: int | None = None,
) -> Campaign:
    """Store the campaign and its two arms (the control drawn once, with a stored seed)."""
    actor.require_manager("create campaigns")
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise CRMError("A campaign needs a name of 1 to 200 characters.")
    if session.exec(select(Campaign.id).where(Campaign.name == name)).first() is not None:
        raise CRMError(f"There is already a campaign {name!r}.", hint="Pick another name.")
    if not subject.strip():
        raise CRMError(
            "The campaign needs a subject.", hint="Give --subject or a 'Subject:' first line."
        )
    if not customer_ids:
        raise CRMError("That audience has no customers.")
    seed = secrets.randbits(48) if seed is None else seed
    campaign = Campaign(
        name=name,
        audience=audience,
        subject=" ".join(subject.split())[:300],
        template=template,
        holdout=holdout,
        seed=seed,
        window_days=window_days,
        created_by=actor.name[:200],
    )
    session.add(campaign)
    session.flush()
    arms = split_arms(customer_ids, holdout=holdout, seed=seed)
    emails = _primary_emails(session, list(arms))
    rows = [
        {
            "campaign_id": campaign.id,
            "customer_id": cid,
            "arm": arm,
            "email": emails.get(cid),
            "status": PENDING if arm == TREATMENT else SKIPPED,
            "note": None if arm == TREATMENT else "control: never contacted",
        }
        for cid, arm in sorted(arms.items())
    ]
    session.execute(sa.insert(CampaignMember), rows)
    counts = {arm: sum(1 for a in arms.values() if a == arm) for arm in (TREATMENT, CONTROL)}
    record_event(
        session,
        actor=actor,
        action="create",
        entity="campaign",
        entity_id=campaign.id,
        after={
            "name": name,
            "audience": audience,
            "holdout": holdout,
            "seed": seed,
            "window_days": window_days,
            **counts,
        },
    )
    return campaign


# ---------------------------------------------------------------- preview and list


@dataclass(frozen=True)
class Recipient:
    member_id: int
    customer_id: int
    customer_name: str
    email: str | None


@dataclass
class Preview:
    campaign: Campaign
    treatment: int
    control: int
    to_send: int
    sent: int
    no_email: int
    opted_out: int
    sample: list[Recipient] = field(default_factory=list)


def _recipients(
    session: Session, campaign_id: int, *, pending_only: bool, limit: int | None = None
) -> list[Recipient]:
    stmt = (
        select(CampaignMember.id, CampaignMember.customer_id, Customer.name, CampaignMember.email)
        .join(Customer, col(Customer.id) == CampaignMember.customer_id)
        .where(CampaignMember.campaign_id == campaign_id, CampaignMember.arm == TREATMENT)
        .order_by(col(CampaignMember.id))
    )
    if pending_only:
        stmt = stmt.where(CampaignMember.status == PENDING)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        Recipient(mid, cid, name, email)  # type: ignore[arg-type]
        for mid, cid, name, email in session.exec(stmt)
    ]


def _opted_out(session: Session, emails: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(emails), 500):
        by_digest = contact_digests(session, ContactKind.email, emails[i : i + 500])
        found = session.exec(
            select(CampaignOptOut.digest).where(col(CampaignOptOut.digest).in_(list(by_digest)))
        )
        out.update(by_digest[d].lower() for d in found)
    return out


def preview(session: Session, name: str, *, sample: int = 10) -> Preview:
    campaign = get_campaign(session, name)
    rows = session.exec(
        select(CampaignMember.arm, CampaignMember.status, CampaignMember.email).where(
            CampaignMember.campaign_id == campaign.id
        )
    ).all()
    treated = [r for r in rows if r[0] == TREATMENT]
    pending = [r for r in treated if r[1] == PENDING]
    opted = _opted_out(session, [r[2] for r in pending if r[2]])
    no_email = sum(1 for r in pending if not r[2])
    return Preview(
        campaign=campaign,
        treatment=len(treated),
        control=len(rows) - len(treated),
        to_send=sum(1 for r in pending if r[2] and r[2].lower() not in opted),
        sent=sum(1 for r in treated if r[1] == SENT),
        no_email=no_email,
        opted_out=len(opted),
        sample=_recipients(session, campaign.id, pending_only=True, limit=sample),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class CampaignRow:
    name: str
    status: str
    created_at: datetime
    started_at: datetime | None
    treatment: int
    control: int
    sent: int


def list_campaigns(session: Session) -> list[CampaignRow]:
    counts = (
        select(
            CampaignMember.campaign_id,
            sa.func.sum(sa.case((col(CampaignMember.arm) == TREATMENT, 1), else_=0)).label("t"),
            sa.func.sum(sa.case((col(CampaignMember.arm) == CONTROL, 1), else_=0)).label("c"),
            sa.func.sum(sa.case((col(CampaignMember.status) == SENT, 1), else_=0)).label("s"),
        )
        .group_by(col(CampaignMember.campaign_id))
        .subquery()
    )
    rows = session.execute(
        sa.select(Campaign, counts.c.t, counts.c.c, counts.c.s)
        .outerjoin(counts, counts.c.campaign_id == Campaign.id)
        .order_by(col(Campaign.id).desc())
    ).all()
    return [
        CampaignRow(
            c.name, c.status, c.created_at, c.started_at, int(t or 0), int(k or 0), int(s or 0)
        )
        for c, t, k, s in rows
    ]


# ---------------------------------------------------------------- sending


def start_sending(
    session: Session, *, name: str, actor: Actor, now: datetime | None = None
) -> Campaign:
    """Open the response window (once) and say who started sending."""
    actor.require_manager("send campaigns")
    campaign = get_campaign(session, name, for_update=True)
    if campaign.started_at is None:
        campaign.started_at = now or utcnow()
        campaign.status = "sending"
        session.add(campaign)
        record_event(
            session,
            actor=actor,
            action="send",
            entity="campaign",
            entity_id=campaign.id,
            after={"started_at": campaign.started_at},
        )
    return campaign


def pending_recipients(session: Session, campaign_id: int) -> list[Recipient]:
    return _recipients(session, campaign_id, pending_only=True)


def is_opted_out(session: Session, email: str) -> bool:
    return session.get(CampaignOptOut, contact_digest(session, ContactKind.email, email)) is not None


def skip_recipient(session: Session, *, member_id: int, reason: str) -> None:
    session.execute(
        sa.update(CampaignMember)
        .where(col(CampaignMember.id) == member_id, col(CampaignMember.status) == PENDING)
        .values(status=SKIPPED, note=reason[:500])
    )


def bare_message_id(message_id: str) -> str:
    """The Message-ID as mail capture stores it: without the angle brackets."""
    return message_id.strip().strip("<>")


def record_sent(
    session: Session,
    *,
    campaign: Campaign,
    recipient: Recipient,
    message_id: str,
    subject: str,
    body: str,
    actor: Actor,
    now: datetime | None = None,
) -> None:
    """The mail went out: mark the member sent and store the mail as an outbound interaction
    whose external id is its Message-ID (so mail capture threads the reply to it)."""
    now = now or utcnow()
    mid = bare_message_id(message_id)
    session.execute(
        sa.update(CampaignMember)
        .where(col(CampaignMember.id) == recipient.member_id)
        .values(status=SENT, message_id=mid[:500], sent_at=now, note=None)
    )
    interaction = Interaction(
        customer_id=recipient.customer_id,
        channel=Channel.email,
        direction=Direction.outbound,
        occurred_at=now,
        subject=subject[:500],
        body=body[:100_000],
        author=actor.name[:320],
        source=SOURCE,
        external_id=mid[:500],
        thread_key=f"mail:{mid}"[:500],
        meta={
            "campaign": campaign.name,
            "campaign_id": campaign.id,
            "message_id": mid,
            "to": [recipient.email] if recipient.email else [],
        },
    )
    session.add(interaction)
    record_event(
        session,
        actor=actor,
        action="campaign_mail",
        entity="customer",
        entity_id=recipient.customer_id,
        after={"campaign": campaign.name, "message_id": mid},
    )


def finish_sending(session: Session, *, campaign_id: int) -> None:
    left = session.exec(
        select(sa.func.count())
        .select_from(CampaignMember)
        .where(CampaignMember.campaign_id == campaign_id, CampaignMember.status == PENDING)
    ).one()
    if not left:
        session.execute(
            sa.update(Campaign).where(col(Campaign.id) == campaign_id).values(status="sent")
        )


# ---------------------------------------------------------------- opt-outs


def opt_out(session: Session, *, email: str, actor: Actor) -> bool:
    """No more campaign mail to this address; False when it had opted out already."""
    address = normalise_email(email)
    digest = contact_digest(session, ContactKind.email, address)
    if session.get(CampaignOptOut, digest) is not None:
        return False
    session.add(CampaignOptOut(digest=digest))
    record_event(
        session, actor=actor, action="opt_out", entity="campaign_mail", after={"email": address}
    )
    return True


def opt_out_token(secret: str, *, email: str) -> str:
    """A signed token for a campaign mail's one-click unsubscribe link (it does not expire)."""
    return signing.sign(secret, f"campaign-optout:{email.lower()}")


def read_opt_out_token(secret: str, token: str) -> str:
    bad = CRMError(
        "This unsubscribe link is not valid.", hint="Reply to the mail with 'unsubscribe'."
    )
    payload = signing.verify(secret, token)
    if payload is None:
        raise bad
    purpose, _, email = payload.partition(":")
    if purpose != "campaign-optout" or "@" not in email:
        raise bad
    return email


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class ArmTotals:
    """What one arm adds up to; sums of squares give the variance of revenue per customer."""

    arm: str
    customers: int
    contacted: int
    responded: int
    revenue: float
    revenue_sq: float = 0.0


@dataclass(frozen=True)
class ArmStats:
    arm: str
    customers: int
    contacted: int
    responded: int
    response_rate: float
    revenue: float
    revenue_per_customer: float


@dataclass(frozen=True)
class Uplift:
    """A treated arm against the control: response rate in points, revenue per customer."""

    arm: str
    points: float
    low: float
    high: float
    revenue: float
    revenue_low: float
    revenue_high: float
    verdict: str
    sentence: str


@dataclass
class Report:
    name: str
    status: str
    window_days: int
    started_at: datetime | None
    window_ends: datetime | None
    control_arm: str
    arms: list[ArmStats]
    uplifts: list[Uplift]


def _mean_var(total: float, total_sq: float, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    mean = total / n
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    return mean, var


def uplift_of(treated: ArmTotals, control: ArmTotals) -> Uplift:
    """Difference in response rate (Wald 95% interval for two proportions) and in revenue per
    customer (Welch 95% interval), treated minus control, with a plain sentence."""
    if treated.customers == 0 or control.customers == 0:
        return Uplift(
            treated.arm, 0, 0, 0, 0, 0, 0, "unknown", "No uplift yet: an arm has no customers."
        )
    p1, p0 = treated.responded / treated.customers, control.responded / control.customers
    se = math.sqrt(p1 * (1 - p1) / treated.customers + p0 * (1 - p0) / control.customers)
    diff = (p1 - p0) * 100
    low, high = diff - Z95 * se * 100, diff + Z95 * se * 100
    m1, v1 = _mean_var(treated.revenue, treated.revenue_sq, treated.customers)
    m0, v0 = _mean_var(control.revenue, control.revenue_sq, control.customers)
    rse = math.sqrt(v1 / treated.customers + v0 / control.customers)
    rdiff = m1 - m0
    if low > 0:
        verdict, words = "worked", "the campaign worked"
    elif high < 0:
        verdict, words = "harmed", "the campaign did harm"
    else:
        verdict, words = "unclear", "no clear effect (the interval includes zero)"
    digits = 1 if max(abs(low), abs(high)) >= 1 else 2  # a small rate keeps its second digit
    sentence = f"{diff:+.{digits}f} points, 95% CI {low:.{digits}f} to {high:.{digits}f}: {words}."
    return Uplift(
        treated.arm, diff, low, high, rdiff, rdiff - Z95 * rse, rdiff + Z95 * rse, verdict, sentence
    )


def summarise(
    totals: Sequence[ArmTotals], *, control_arm: str = CONTROL
) -> tuple[list[ArmStats], list[Uplift]]:
    """Per-arm figures and the uplift of every other arm over ``control_arm``."""
    stats = [
        ArmStats(
            t.arm,
            t.customers,
            t.contacted,
            t.responded,
            t.responded / t.customers if t.customers else 0.0,
            t.revenue,
            t.revenue / t.customers if t.customers else 0.0,
        )
        for t in totals
    ]
    control = next((t for t in totals if t.arm == control_arm), None)
    uplifts = [
        uplift_of(t, control) for t in totals if control is not None and t.arm != control_arm
    ]
    return stats, uplifts


def responses(session: Session, campaign: Campaign) -> dict[int, tuple[bool, float]]:
    """Per member customer: (responded, revenue) within the window, read with a few GROUP BYs."""
    if campaign.started_at is None:
        return {}
    start = campaign.started_at
    end = start + timedelta(days=campaign.window_days)
    members = (
        select(CampaignMember.customer_id)
        .where(CampaignMember.campaign_id == campaign.id)
        .scalar_subquery()
    )
    out: dict[int, list[Any]] = {}

    def add(rows: Any, responded: bool = True) -> None:
        for cid, revenue in rows:
            entry = out.setdefault(cid, [False, 0.0])
            entry[0] = entry[0] or responded
            entry[1] += float(revenue or 0)

    live = col(Interaction.deleted_at).is_(None)
    in_window = sa.and_(col(Interaction.occurred_at) >= start, col(Interaction.occurred_at) <= end)
    add(
        session.execute(
            sa.select(col(Interaction.customer_id), sa.func.sum(Interaction.amount))
            .where(
                col(Interaction.customer_id).in_(members),
                col(Interaction.channel) == Channel.purchase,
                live,
                in_window,
            )
            .group_by(col(Interaction.customer_id))
        ).all()
    )
    # A reply: an inbound mail in the thread of the campaign mail this customer got.
    # (Its Date header may round to a second before the window opened: only its end counts.)
    add(
        (cid, 0)
        for (cid,) in session.execute(
            sa.select(col(CampaignMember.customer_id))
            .distinct()
            .join(
                Interaction,
                sa.and_(
                    col(Interaction.customer_id) == CampaignMember.customer_id,
                    col(Interaction.thread_key)
                    == sa.literal("mail:") + col(CampaignMember.message_id),
                ),
            )
            .where(
                col(CampaignMember.campaign_id) == campaign.id,
                col(CampaignMember.message_id).is_not(None),
                col(Interaction.direction) == Direction.inbound,
                col(Interaction.channel) == Channel.email,
                live,
                col(Interaction.occurred_at) <= end,
            )
        ).all()
    )
    add(
        (cid, 0)
        for (cid,) in session.execute(
            sa.select(col(Deal.customer_id))
            .distinct()
            .where(
                col(Deal.customer_id).in_(members),
                col(Deal.created_at) >= start,
                col(Deal.created_at) <= end,
            )
        ).all()
    )
    add(
        session.execute(
            sa.select(col(Deal.customer_id), sa.func.sum(Deal.amount))
            .where(
                col(Deal.customer_id).in_(members),
                col(Deal.status) == DealStatus.won,
                col(Deal.closed_at) >= start,
                col(Deal.closed_at) <= end,
            )
            .group_by(col(Deal.customer_id))
        ).all()
    )
    return {cid: (bool(v[0]), float(v[1])) for cid, v in out.items()}


def report(session: Session, name: str) -> Report:
    campaign = get_campaign(session, name)
    members = session.exec(
        select(CampaignMember.customer_id, CampaignMember.arm, CampaignMember.status).where(
            col(CampaignMember.campaign_id) == campaign.id
        )
    ).all()
    got = responses(session, campaign)
    # Treatment and control; a campaign loaded from a test with several mailings has an arm each.
    arms_present = {a for _, a, _ in members}
    order = sorted(arms_present - {TREATMENT, CONTROL})
    order = ([TREATMENT] if TREATMENT in arms_present or not order else []) + order + [CONTROL]
    totals = []
    for arm in order:
        in_arm = [(cid, status) for cid, a, status in members if a == arm]
        revenue = [got.get(cid, (False, 0.0))[1] for cid, _ in in_arm]
        totals.append(
            ArmTotals(
                arm=arm,
                customers=len(in_arm),
                contacted=sum(1 for _, s in in_arm if s == SENT),
                responded=sum(1 for cid, _ in in_arm if got.get(cid, (False, 0.0))[0]),
                revenue=sum(revenue),
                revenue_sq=sum(r * r for r in revenue),
            )
        )
    arms, uplifts = summarise(totals)
    started = campaign.started_at
    if started is None:
        uplifts = []  # nothing went out: there is no effect to measure yet
    return Report(
        campaign.name,
        campaign.status,
        campaign.window_days,
        started,
        started + timedelta(days=campaign.window_days) if started else None,
        CONTROL,
        arms,
        uplifts,
    )


# ---------------------------------------------------------------- a finished experiment


def import_experiment(
    session: Session,
    *,
    name: str,
    started_at: datetime,
    window_days: int,
    arms: Sequence[str],
    purchases: Sequence[float],
    actor: Actor,
) -> Campaign:
    """Load a randomised mailing test run elsewhere as a sent campaign: one new customer per
    row, in arm ``arms[i]`` (``control`` for the unmailed), who bought ``purchases[i]`` (0: no
    purchase) inside the window. Used to read a public test through ``report``."""
    actor.require_admin("import an experiment")
    if len(arms) != len(purchases) or not arms:
        raise CRMError("An experiment needs one arm and one purchase amount per customer.")
    if session.exec(select(Campaign.id).where(Campaign.name == name)).first() is not None:
        raise CRMError(f"There is already a campaign {name!r}.")
    before = started_at - timedelta(days=365)
    first = (session.exec(select(sa.func.max(Customer.id))).one() or 0) + 1
    ids = list(range(first, first + len(arms)))
    session.execute(
        sa.insert(Customer),
        [
            {
                "id": cid,
                "name": f"{name} customer {n + 1}",
                "name_key": f"{name} customer {n + 1}".lower(),
                "status": CustomerStatus.active,
                "created_at": before,
                "updated_at": before,
            }
            for n, cid in enumerate(ids)
        ],
    )
    campaign = Campaign(
        name=name,
        audience={"experiment": name},
        subject=f"({name})",
        template="",
        holdout=sum(1 for a in arms if a == CONTROL) / len(arms),
        seed=0,
        window_days=window_days,
        status="sent",
        created_by=actor.name[:200],
        started_at=started_at,
    )
    session.add(campaign)
    session.flush()
    session.execute(
        sa.insert(CampaignMember),
        [
            {
                "campaign_id": campaign.id,
                "customer_id": cid,
                "arm": arm,
                "status": SKIPPED if arm == CONTROL else SENT,
                "sent_at": None if arm == CONTROL else started_at,
            }
            for cid, arm in zip(ids, arms, strict=True)
        ],
    )
    bought = started_at + timedelta(days=1)
    rows = [
        {
            "customer_id": cid,
            "channel": Channel.purchase,
            "direction": Direction.inbound,
            "occurred_at": bought,
            "body": "",
            "source": name[:200],
            "external_id": f"{name}-{cid}",
            "amount": round(amount, 2),
            "currency": "USD",
            "created_at": bought,
            "updated_at": bought,
        }
        for cid, amount in zip(ids, purchases, strict=True)
        if amount > 0
    ]
    if rows:
        session.execute(sa.insert(Interaction), rows)
    record_event(
        session,
        actor=actor,
        action="import_experiment",
        entity="campaign",
        entity_id=campaign.id,
        after={"name": name, "customers": len(arms), "purchases": len(rows)},
    )
    return campaign
