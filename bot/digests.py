"""Digests: what each person should do today, built from the store and analytics, rendered
with Jinja2 for HTML email and plain text (and, by ``bot.slack.blocks.digests``, for Slack).

Building (data) and rendering (templates) are separate: ``build_*`` functions read the
database and return a ``Digest``; ``render_*`` turn one into text or HTML.
"""

from __future__ import annotations

import functools
import io
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlmodel import Session, col, select

from bot.rendering import register_filters
from crm.config import Settings
from crm.models import Customer, Deal, FollowUp, FollowUpStatus, Interaction, Role, User
from crm.services import insights

logger = logging.getLogger(__name__)

KINDS = ("churn", "followups", "segments")
TITLES = {"churn": "Churn risk", "followups": "Your follow-ups", "segments": "Customer segments"}


@dataclass
class Item:
    """One line of a digest: a customer (or deal) and what to do about it."""

    title: str
    details: list[str] = field(default_factory=list)
    action: str | None = None
    customer_id: int | None = None
    follow_up_id: int | None = None
    deal_id: int | None = None


@dataclass
class Section:
    key: str
    heading: str
    items: list[Item] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)  # lines shown above the items

    @property
    def empty(self) -> bool:
        return not self.items and not self.summary


@dataclass
class Digest:
    kind: str
    title: str
    recipient: str
    intro: str
    generated_at: datetime
    tz: str
    sections: list[Section] = field(default_factory=list)
    chart_png: bytes | None = None
    chart_alt: str = ""

    @property
    def empty(self) -> bool:
        return all(s.empty for s in self.sections)

    @property
    def visible_sections(self) -> list[Section]:
        return [s for s in self.sections if not s.empty]


# ---------------------------------------------------------------- helpers


def _money(amount: Decimal | float | None, currency: str = "") -> str:
    if amount is None:
        return "-"
    return f"{Decimal(str(amount)):,.0f} {currency}".strip()


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    days = (now - then).days
    return "today" if days <= 0 else "yesterday" if days == 1 else f"{days} days ago"


def _last_touch(session: Session, customer_ids: Sequence[int]) -> dict[int, datetime]:
    if not customer_ids:
        return {}
    stmt = (
        sa.select(Interaction.customer_id, sa.func.max(Interaction.occurred_at))
        .where(col(Interaction.customer_id).in_(customer_ids), col(Interaction.deleted_at).is_(None),
               Interaction.channel != "purchase")
        .group_by(Interaction.customer_id)
    )
    out: dict[int, datetime] = {}
    for cid, at in session.execute(stmt):
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        if at is not None:
            out[cid] = at if at.tzinfo else at.replace(tzinfo=ZoneInfo("UTC"))
    return out


def _owner_names(session: Session, owner_ids: set[int | None]) -> dict[int, str]:
    ids = [i for i in owner_ids if i is not None]
    if not ids:
        return {}
    return {u.id: u.name for u in session.exec(select(User).where(col(User.id).in_(ids)))}  # type: ignore[misc]


# ---------------------------------------------------------------- churn


def build_churn_digest(session: Session, settings: Settings, *, now: datetime, recipient: str = "team",
                       owner_id: int | None = None, limit: int = 15) -> Digest:
    run = insights.latest_run(session)
    digest = Digest(kind="churn", title=TITLES["churn"], recipient=recipient, generated_at=now, tz=settings.timezone,
                    intro="Customers whose churn risk is high or rose since the last scoring run.")
    if run is None:
        return digest
    # High risk: the top of the latest run. Rising: compared across all scored customers in SQL,
    # so a jump from a low score is caught too.
    high = [r for r in insights.at_risk_customers(session, limit=limit * 4, owner_id=owner_id, min_level="low")
            if r.score.probability >= settings.churn_high_risk]
    high_ids = {r.customer.id for r in high}
    rose = [r for r in insights.risk_risers(session, min_rise=settings.churn_rise_alert, limit=limit * 2, owner_id=owner_id)
            if r.customer.id not in high_ids]
    rows = high + rose
    high_total = insights.count_at_risk(session, min_probability=settings.churn_high_risk, owner_id=owner_id)
    touches = _last_touch(session, [r.customer.id for r in high[:limit] + rose[:limit]])  # type: ignore[misc]
    owners = _owner_names(session, {r.customer.owner_id for r in rows})

    def item(r: insights.AtRisk) -> Item:
        c = r.customer
        change = ""
        if r.previous_probability is not None:
            delta = round((r.score.probability - r.previous_probability) * 100)
            change = f" (was {r.previous_probability:.0%}, {'+' if delta >= 0 else ''}{delta} pts)"
        details = [f"Risk {r.score.probability:.0%}{change}" + (" · estimated, no model yet" if r.score.method == "cold_start" else "")]
        if r.score.value_at_stake:
            details.append(f"Value at stake: {_money(r.score.value_at_stake, settings.default_currency)} a year")
        details.extend(f"Why: {reason}" for reason in (r.score.reasons or [])[:3])
        details.append(f"Owner: {owners.get(c.owner_id, 'nobody')} · last touch {_ago(touches.get(c.id), now)}")  # type: ignore[arg-type]
        quiet = touches.get(c.id)  # type: ignore[arg-type]
        if quiet is None or (now - quiet).days >= 21:
            action = "Call them this week: nobody has talked to them in a while."
        else:
            action = "Review the account with the owner and agree a next step."
        return Item(title=c.name + (f" ({c.company})" if c.company and c.company != c.name else ""), details=details,
                    action=action, customer_id=c.id)

    digest.sections = [
        Section("high", f"High risk ({high_total})", [item(r) for r in high[:limit]]),
        Section("rose", f"Risk rose since the last run ({len(rose)})", [item(r) for r in rose[:limit]]),
    ]
    digest.intro = f"Scored {run.finished_at:%Y-%m-%d}: {high_total} customers at high risk, {len(rose)} rising." if run.finished_at else digest.intro
    return digest


# ---------------------------------------------------------------- follow-ups


def _day_bounds(now: datetime, tz: str) -> tuple[datetime, datetime]:
    local = now.astimezone(ZoneInfo(tz))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(ZoneInfo("UTC")), (start + timedelta(days=1)).astimezone(ZoneInfo("UTC"))


def build_followups_digest(session: Session, settings: Settings, *, user: User, now: datetime, limit: int = 15) -> Digest:
    tz = user.timezone or settings.timezone
    digest = Digest(kind="followups", title=TITLES["followups"], recipient=user.name, generated_at=now, tz=tz,
                    intro=f"Good morning {user.name.split()[0]}: here is what needs you today.")
    today_start, tomorrow = _day_bounds(now, tz)
    due = list(session.exec(
        select(FollowUp).where(FollowUp.owner_id == user.id, col(FollowUp.status).in_([FollowUpStatus.open, FollowUpStatus.snoozed]),
                               FollowUp.due_at < tomorrow).order_by(col(FollowUp.due_at))
    ))
    names = {c.id: c.name for c in session.exec(select(Customer).where(col(Customer.id).in_({f.customer_id for f in due})))} if due else {}
    local = ZoneInfo(tz)

    def fu_item(f: FollowUp) -> Item:
        when = f.due_at.astimezone(local)
        return Item(title=names.get(f.customer_id, f"Customer #{f.customer_id}"),
                    details=[f"Due {when:%a %d %b %H:%M}" + (f" · {f.note}" if f.note else "")],
                    customer_id=f.customer_id, follow_up_id=f.id)

    overdue = [f for f in due if f.due_at < today_start]
    today = [f for f in due if f.due_at >= today_start]
    findings = insights.findings_for(session, owner_id=user.id, limit=200)
    by_kind: dict[str, list[Item]] = {}
    customer_names = {c.id: c.name for c in session.exec(select(Customer).where(
        col(Customer.id).in_({f.customer_id for f in findings if f.customer_id})))} if findings else {}
    for f in findings:
        if f.kind == "overdue_follow_up":
            continue  # listed live from the follow-ups above
        title = customer_names.get(f.customer_id, "") if f.customer_id else ""
        if f.deal_id:
            deal = session.get(Deal, f.deal_id)
            title = f"{deal.title} · {title}" if deal else title
        by_kind.setdefault(f.kind, []).append(Item(title=title or "(no customer)", details=[f.why], action=f.action,
                                                   customer_id=f.customer_id, deal_id=f.deal_id))
    digest.sections = [
        Section("overdue", f"Overdue follow-ups ({len(overdue)})", [fu_item(f) for f in overdue[:limit]]),
        Section("today", f"Due today ({len(today)})", [fu_item(f) for f in today[:limit]]),
        Section("rotting", f"Deals with no next step ({len(by_kind.get('rotting_deal', []))})", by_kind.get("rotting_deal", [])[:limit]),
        Section("close_date", f"Close date passed ({len(by_kind.get('close_date_passed', []))})", by_kind.get("close_date_passed", [])[:limit]),
        Section("unanswered", f"Unanswered customer emails ({len(by_kind.get('unanswered_email', []))})", by_kind.get("unanswered_email", [])[:limit]),
        Section("quiet", f"Customers going quiet ({len(by_kind.get('going_quiet', []))})", by_kind.get("going_quiet", [])[:limit]),
    ]
    if user.role in (Role.manager, Role.admin):
        digest.sections.append(_team_rollup(session, now=now, today_end=tomorrow))
    return digest


def _team_rollup(session: Session, *, now: datetime, today_end: datetime) -> Section:
    """For managers: open follow-ups due by today and findings, per rep."""
    stmt = (
        sa.select(FollowUp.owner_id, sa.func.count())
        .where(col(FollowUp.status).in_([FollowUpStatus.open, FollowUpStatus.snoozed]), FollowUp.due_at < now)
        .group_by(FollowUp.owner_id)
    )
    overdue = {owner: int(n) for owner, n in session.execute(stmt)}
    findings = Counter({owner: sum(n for kind, n in kinds.items() if kind != "overdue_follow_up")
                        for owner, kinds in insights.finding_counts(session).items()})
    names = _owner_names(session, set(overdue) | set(findings))
    lines = [
        f"{names.get(owner, 'Unassigned') if owner else 'Unassigned'}: {overdue.get(owner, 0)} overdue follow-ups, {findings.get(owner, 0)} other items"
        for owner in sorted(set(overdue) | set(findings), key=lambda o: -(overdue.get(o, 0) + findings.get(o, 0)))
    ][:20]
    return Section("team", "Team roll-up", summary=lines)


# ---------------------------------------------------------------- segments

WORTH_ATTENTION = ("Can't Lose Them", "At Risk", "About to Sleep", "Need Attention", "Champions")


def build_segments_digest(session: Session, settings: Settings, *, now: datetime, recipient: str = "team", top: int = 3) -> Digest:
    from crm.models import CustomerSegment

    counts = insights.segment_counts(session)
    digest = Digest(kind="segments", title=TITLES["segments"], recipient=recipient, generated_at=now, tz=settings.timezone,
                    intro="How the customer base is spread across segments, and who moved.")
    if not counts:
        return digest
    size_lines = []
    for row in counts:
        change = ""
        if row.previous is not None and row.previous != row.customers:
            change = f" ({'+' if row.customers > row.previous else ''}{row.customers - row.previous})"
        size_lines.append(f"{row.segment}: {row.customers:,}{change}")
    moves = [f"{n:,} moved from {a} to {b}" for a, b, n in insights.segment_moves(session)[:8]]
    run = insights.latest_run(session)
    attention: list[Item] = []
    for name in WORTH_ATTENTION:
        stmt = (
            sa.select(Customer, sa.func.coalesce(sa.func.sum(Interaction.amount), 0))
            .join(CustomerSegment, CustomerSegment.customer_id == Customer.id)
            .outerjoin(Interaction, sa.and_(Interaction.customer_id == Customer.id, Interaction.channel == "purchase"))
            .where(CustomerSegment.run_id == run.id, CustomerSegment.rfm_segment == name)  # type: ignore[union-attr]
            .group_by(Customer.id)
            .order_by(sa.func.coalesce(sa.func.sum(Interaction.amount), 0).desc(), Customer.id)
            .limit(top)
        )
        for customer, value in session.execute(stmt):
            attention.append(Item(title=customer.name + (f" ({customer.company})" if customer.company else ""),
                                  details=[f"{name} · lifetime purchases {_money(value, settings.default_currency)}"],
                                  customer_id=customer.id))
    digest.sections = [
        Section("sizes", "Segment sizes", summary=size_lines),
        Section("moves", "Movement since the last run", summary=moves),
        Section("attention", "Accounts worth attention", attention),
    ]
    digest.chart_png, digest.chart_alt = segment_chart(counts)
    return digest


def segment_chart(counts: Sequence[insights.SegmentCount]) -> tuple[bytes | None, str]:
    """A small horizontal bar chart of segment sizes (PNG), or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the chart is a nicety; the digest reads well without it
        return None, ""
    rows = list(counts)[:11][::-1]
    fig, ax = plt.subplots(figsize=(5.2, 0.32 * len(rows) + 0.6), dpi=110)
    ax.barh([r.segment for r in rows], [r.customers for r in rows], color="#4a6fa5")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.set_xlabel("customers", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    alt = "Segment sizes: " + ", ".join(f"{r.segment} {r.customers}" for r in counts)
    return buffer.getvalue(), alt


def build_digest(session: Session, settings: Settings, kind: str, *, now: datetime, user: User | None = None) -> Digest:
    """The digest of this kind as of ``now``; follow-ups are per user and need one."""
    if kind == "followups":
        if user is None:
            raise ValueError("the follow-ups digest is built for one user")
        return build_followups_digest(session, settings, user=user, now=now)
    if kind == "churn":
        return build_churn_digest(session, settings, now=now)
    if kind == "segments":
        return build_segments_digest(session, settings, now=now)
    raise ValueError(f"unknown digest {kind!r}")


# ---------------------------------------------------------------- rendering


@functools.cache
def _environment(autoescape: bool) -> Environment:
    folder = resources.files("bot.templates")
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return register_filters(env)


def text_environment() -> Environment:
    """Templates for plain text and Slack mrkdwn (no HTML escaping)."""
    return _environment(autoescape=False)


def _html_env() -> Environment:
    return _environment(autoescape=True)


def template_context(digest: Digest, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What every digest template sees: the digest, its non-empty sections, the local date."""
    local = digest.generated_at.astimezone(ZoneInfo(digest.tz))
    return {"digest": digest, "sections": digest.visible_sections, "date": f"{local:%A %d %B %Y}", **(extra or {})}


def render_text(digest: Digest, *, unsubscribe: str | None = None) -> str:
    return text_environment().get_template("digests/digest.txt.j2").render(**template_context(digest, {"unsubscribe": unsubscribe}))


def render_html(digest: Digest, *, unsubscribe: str | None = None, chart_cid: str | None = None) -> str:
    return _html_env().get_template("digests/digest.html.j2").render(
        **template_context(digest, {"unsubscribe": unsubscribe, "chart_cid": chart_cid}))
