"""Digests: what each person should do today, built from the store and analytics, rendered
with Jinja2 for HTML email and plain text (and, by ``bot.slack.blocks.digests``, for Slack).

Building (data) and rendering (templates) are separate: ``build_*`` functions read the
database and return a ``Digest``; ``render_*`` turn one into text or HTML.

Each digest is short on purpose: the few items that matter most, ranked by what is at stake,
each with the action that fits it; a capped section says how many more there are and which
command lists them all. Changes ("new on this list", "+12 pts") are measured against the last
digest of the same kind that reached the same recipient: what it remembered is stored with
that send (``Digest.memory``) and handed back as ``LastDigest``.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlmodel import Session, col, select

from bot.rendering import register_filters
from crm.config import Settings
from crm.models import (
    AnalyticsRun,
    Customer,
    Deal,
    FollowUp,
    FollowUpStatus,
    Interaction,
    Role,
    User,
)
from crm.services import digest_runs, insights, surveys

logger = logging.getLogger(__name__)

KINDS = ("churn", "followups", "segments")
TITLES = {"churn": "Churn risk", "followups": "Your follow-ups", "segments": "Customer segments"}

# Served by crmbot's HTTP endpoint: a digest email's link that shows a customer in Slack.
OPEN_CUSTOMER_PATH = "/digests/open"

CHURN_SHOWN = 10  # a manager acts on a handful of accounts a day, not on a report
RISERS_SHOWN = 5
SECTION_SHOWN = 15


@dataclass
class Item:
    """One line of a digest: a customer (or deal) and what to do about it."""

    title: str
    details: list[str] = field(default_factory=list)
    action: str | None = None
    customer_id: int | None = None
    follow_up_id: int | None = None
    deal_id: int | None = None
    headline: str | None = None  # the figure it is ranked by, shown beside the title


@dataclass
class Section:
    key: str
    heading: str
    items: list[Item] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)  # lines shown above the items
    note: str | None = None  # said once for the whole section (e.g. the action every item shares)
    more: int = 0  # items left out to keep the digest short
    see_all: str | None = None  # the command that lists them all

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
    notes: list[str] = field(default_factory=list)  # closing lines: what is left out, and why
    # Kept with the send; the next digest of this kind to the same recipient compares with it.
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return all(s.empty for s in self.sections)

    @property
    def visible_sections(self) -> list[Section]:
        return [s for s in self.sections if not s.empty]


@dataclass(frozen=True)
class LastDigest:
    """The last digest of a kind that reached a recipient: the time it spoke of (when it was
    built), and what it remembered."""

    sent_at: datetime
    memory: dict[str, Any]


def last_digest(session: Session, kind: str, recipient: str | None) -> LastDigest | None:
    """The last ``kind`` digest sent to ``recipient`` (a delivery key such as
    ``email:ann@ourco.com``; None: to anyone)."""
    run = digest_runs.last_sent(session, job=kind, recipient=recipient)
    if run is None or run.sent_at is None:
        return None
    memory = dict(run.meta or {})
    try:
        as_of = datetime.fromisoformat(memory["as_of"])
    except (KeyError, TypeError, ValueError):
        as_of = run.sent_at
    return LastDigest(sent_at=as_of, memory=memory)


# ---------------------------------------------------------------- helpers


def _money(amount: Decimal | float | None, currency: str = "") -> str:
    if amount is None:
        return "-"
    return f"{Decimal(str(amount)):,.0f} {currency}".strip()


def _plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    days = (now - then).days
    return "today" if days <= 0 else "yesterday" if days == 1 else f"{days} days ago"


def _day(when: datetime | date, tz: str) -> str:
    """A short local date: "Mon 30 Nov" (a date is already local)."""
    if isinstance(when, datetime):  # stored times are UTC, with or without their zone
        when = (when if when.tzinfo else when.replace(tzinfo=ZoneInfo("UTC"))).astimezone(
            ZoneInfo(tz)
        )
    return f"{when:%a %d %b}"


def _customer_title(customer: Customer) -> str:
    return customer.name + (
        f" ({customer.company})" if customer.company and customer.company != customer.name else ""
    )


def _latest_at(
    session: Session, customer_ids: Sequence[int], *, purchases: bool
) -> dict[int, datetime]:
    """Each customer's latest purchase (``purchases``) or latest other interaction."""
    if not customer_ids:
        return {}
    channel = Interaction.channel == "purchase" if purchases else Interaction.channel != "purchase"
    stmt = (
        sa.select(Interaction.customer_id, sa.func.max(Interaction.occurred_at))
        .where(
            col(Interaction.customer_id).in_(customer_ids),
            col(Interaction.deleted_at).is_(None),
            channel,
        )
        .group_by(Interaction.customer_id)
    )
    out: dict[int, datetime] = {}
    for cid, at in session.execute(stmt):
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        if at is not None:
            out[cid] = at if at.tzinfo else at.replace(tzinfo=ZoneInfo("UTC"))
    return out


def _last_touch(session: Session, customer_ids: Sequence[int]) -> dict[int, datetime]:
    return _latest_at(session, customer_ids, purchases=False)


def _owner_names(session: Session, owner_ids: set[int | None]) -> dict[int, str]:
    ids = [i for i in owner_ids if i is not None]
    if not ids:
        return {}
    return {u.id: u.name for u in session.exec(select(User).where(col(User.id).in_(ids)))}  # type: ignore[misc]


def _capped(section: Section, total: int, limit: int | None, see_all: str) -> Section:
    """Keep the first ``limit`` items; say how many more there are and how to see them."""
    if limit is not None and len(section.items) > limit:
        section.items = section.items[:limit]
    section.more = max(0, total - len(section.items))
    section.see_all = see_all if section.more else None
    return section


def _share_common_action(section: Section) -> Section:
    """When every item calls for the same action, say it once under the heading."""
    actions = {item.action for item in section.items}
    if len(section.items) > 1 and len(actions) == 1 and None not in actions:
        section.note = f"For each: {actions.pop()}"
        for item in section.items:
            item.action = None
    return section


def _team_digest(
    session: Session,
    settings: Settings,
    kind: str,
    now: datetime,
    recipient: str,
    intro: str,
    last: LastDigest | None,
) -> tuple[Digest, tuple[AnalyticsRun, int | None, str | None] | None]:
    """An empty digest of ``kind``, and what it is built from: (the latest analytics run, the
    run ``last`` was built from, the day ``last`` was sent), or None before any run."""
    digest = Digest(
        kind=kind,
        title=TITLES[kind],
        recipient=recipient,
        generated_at=now,
        tz=settings.timezone,
        intro=intro,
    )
    run = insights.latest_run(session)
    if run is None or run.id is None:
        return digest, None
    since = _day(last.sent_at, settings.timezone) if last else None
    return digest, (run, _remembered_run(session, last), since)


def _remembered_run(session: Session, last: LastDigest | None) -> int | None:
    """The analytics run the last digest was built from, if it is still stored."""
    run_id = last.memory.get("analytics_run") if last else None
    if not isinstance(run_id, int) or not insights.run_exists(session, run_id):
        return None
    return run_id


# ---------------------------------------------------------------- churn

# Work that is waiting on us comes first; otherwise the reason the model weighed most.
_URGENT_REASONS = ("unanswered", "follow_ups", "deals")


def _reason_action(reason: insights.Reason) -> str | None:
    n = reason.numbers
    first = n[0] if n else None
    if reason.kind == "unanswered" and first is not None:
        waited = f" (waiting up to {n[1]} days)" if len(n) > 1 and n[1] is not None else ""
        return f"Reply to their {_plural(first, 'unanswered email')} today{waited}, then call them."
    if reason.kind == "follow_ups" and first is not None:
        return (
            f"Do the {_plural(first, 'overdue follow-up')} now: each is a promise we have not kept."
        )
    if reason.kind == "deals":
        return "Ask why they turned the last deal down, and offer what would keep them."
    if reason.kind == "recency" and first is not None:
        usual = n[1] if len(n) > 1 else None
        if usual:
            late = first - usual
            return f"Ask about their next order: it is {late} days later than their usual rhythm."
        return f"Ask what changed: no purchase in {first} days."
    if reason.kind == "orders":
        return "Book an account review: find out why they buy less and what would bring them back."
    if reason.kind == "frequency" and first:
        return "Help them to a repeat order: suggest the next product that fits what they bought."
    if reason.kind == "silence" and first is not None:
        return f"Send them something useful to them: they have not written to us in {first} days."
    if reason.kind == "outreach":
        if first is None:
            return "Call them this week: nobody on our side has ever reached out to them."
        return f"Call them this week: nobody on our side has been in touch for {first} days."
    if reason.kind == "activity" and first is not None:
        if first >= 100:
            return "Book a check-in call: they have not talked to us at all this quarter."
        return f"Book a check-in call: they talk to us {first}% less than the quarter before."
    if reason.kind == "activity_low" and first is not None:
        if first == 0:
            return "Book a check-in call: nobody has talked with them in 90 days."
        return f"Book a check-in call: only {_plural(first, 'interaction')} with them in 90 days."
    if reason.kind == "satisfaction" and first is not None:
        return f"Call them about it: they rated us {first}/5 in their last survey."
    if reason.kind == "won_deal_only":
        return "Propose their first order: the won deal is all they have bought so far."
    if reason.kind == "tenure" and first is not None:
        return f"Check their onboarding: {first} days in and already going quiet."
    return None


def churn_action(
    reasons: Sequence[insights.Reason], *, quiet_days: int | None, has_owner: bool
) -> str:
    """The next step that fits why a customer is at risk."""
    urgent = [r for kind in _URGENT_REASONS for r in reasons if r.kind == kind]
    action = next((a for r in [*urgent, *reasons] if (a := _reason_action(r))), None)
    if action is None:
        if quiet_days is None:
            action = "Call them this week: nobody has talked to them yet."
        elif quiet_days >= 21:
            action = f"Call them this week: the last touch was {quiet_days} days ago."
        else:
            action = "Review the account with the owner and agree a next step this week."
    if not has_owner:
        action = "Give them an owner today, then: " + action[0].lower() + action[1:]
    return action


def _usable_reasons(texts: Sequence[str] | None) -> list[insights.Reason]:
    """The stored reasons worth showing a customer who has bought: the cold-start note is said
    once for the digest, and "has never bought" is wrong for a customer who bought through a
    won deal without a recorded purchase."""
    reasons = [insights.read_reason(t) for t in texts or []]
    return [
        r
        for r in reasons
        if r.kind != "method" and not (r.kind == "frequency" and r.numbers == (0,))
    ]


def build_churn_digest(
    session: Session,
    settings: Settings,
    *,
    now: datetime,
    recipient: str = "team",
    owner_id: int | None = None,
    limit: int | None = CHURN_SHOWN,
    last: LastDigest | None = None,
) -> Digest:
    """Paying customers most likely to leave, ranked by value at risk (risk x value at stake),
    with what changed since ``last``, the last churn digest the recipient got."""
    tz = settings.timezone
    intro = "Paying customers most likely to leave, ranked by the value at risk."
    digest, found = _team_digest(session, settings, "churn", now, recipient, intro, last)
    if found is None:
        return digest
    run, compare_run, since = found
    listed_before: dict[int, dict[str, Any]] = {
        int(cid): entry
        for cid, entry in ((last.memory.get("listed") or {}) if last else {}).items()
        if isinstance(entry, dict) and str(cid).isdigit()
    }
    watch = insights.churn_watchlist(
        session, run_id=run.id, limit=limit, owner_id=owner_id, compare_run_id=compare_run
    )
    shown_ids = [r.customer.id for r in watch.customers if r.customer.id is not None]
    risers: list[insights.AtRisk] = []
    risers_total = 0
    if compare_run is not None:
        risers, risers_total = insights.churn_risers_since(
            session,
            run_id=run.id,
            since_run_id=compare_run,
            min_rise=settings.churn_rise_alert,
            limit=None if limit is None else RISERS_SHOWN,
            owner_id=owner_id,
            exclude=shown_ids,
        )
    rows = [*watch.customers, *risers]
    ids = [r.customer.id for r in rows if r.customer.id is not None]
    touches = _last_touch(session, ids)
    purchases = _latest_at(session, ids, purchases=True)
    owners = _owner_names(session, {r.customer.owner_id for r in rows})
    today = now.astimezone(ZoneInfo(tz)).date().isoformat()
    listed: dict[str, dict[str, Any]] = {}
    currency = settings.default_currency

    def change(r: insights.AtRisk, cid: int, *, rose: bool) -> str:
        p = r.score.probability
        if rose and r.previous_probability is not None:
            rise = round((p - r.previous_probability) * 100)
            return f"was {r.previous_probability:.0%} on {since}, {rise:+d} pts"
        if last is None:
            return ""
        before = listed_before.get(cid)
        if before is not None and isinstance(before.get("p"), int | float):
            delta = round((p - before["p"]) * 100)
            try:
                listed_since = _day(date.fromisoformat(str(before.get("since"))), tz)
            except ValueError:
                listed_since = since
            moved = "unchanged" if delta == 0 else f"{delta:+d} pts"
            if delta and listed_since != since:
                moved += f" since {since}"
            return f"on this list since {listed_since}, {moved}"
        if r.previous_probability is not None:
            return f"new on this list (was {r.previous_probability:.0%} on {since})"
        return "new on this list"

    def item(r: insights.AtRisk, *, rose: bool = False) -> Item:
        c = r.customer
        cid: int = c.id  # type: ignore[assignment]
        reasons = _usable_reasons(r.score.reasons)
        touch = touches.get(cid)
        stake = _money(r.score.value_at_stake or 0, currency)
        line = f"Risk {r.score.probability:.0%} ({r.score.risk_level}) × {stake} at stake"
        moved = change(r, cid, rose=rose)
        details = [line + (f" · {moved}" if moved else "")]
        if reasons:
            details.append("Why: " + "; ".join(x.text for x in reasons))
        elif r.score.method == "model":
            details.append("Why: no single signal stands out; many small ones add up")
        details.append(
            f"Owner: {owners.get(c.owner_id, 'nobody')} · last touch {_ago(touch, now)}"  # type: ignore[arg-type]
            f" · last purchase {_ago(purchases.get(cid), now)}"
        )
        before = listed_before.get(cid)
        listed[str(cid)] = {
            "p": round(r.score.probability, 4),
            "since": str(before.get("since") or today) if before else today,
        }
        return Item(
            title=_customer_title(c),
            headline=f"{_money(r.value_at_risk, currency)} at risk",
            details=details,
            customer_id=cid,
            action=churn_action(
                reasons,
                quiet_days=(now - touch).days if touch else None,
                has_owner=c.owner_id is not None,
            ),
        )

    see_all = "crmbot digest preview churn --all"
    top = _capped(
        Section(
            "top",
            f"Most value at risk ({len(watch.customers):,} of {watch.total:,})",
            [item(r) for r in watch.customers],
        ),
        watch.total,
        limit,
        see_all,
    )
    if limit is None:
        top.heading = f"Value at risk ({watch.total:,})"
    rose = _capped(
        Section(
            "rose",
            f"Risk rose since your last digest on {since} ({risers_total:,})",
            [item(r, rose=True) for r in risers],
        ),
        risers_total,
        limit,
        see_all,
    )
    digest.sections = [
        top,
        rose,
        _no_longer_at_risk(session, run.id, listed_before, shown=set(ids), since=since),
    ]
    digest.memory = {"analytics_run": run.id, "listed": listed}
    scored = _day(run.finished_at or run.cutoff, tz)
    shown_value = sum(r.value_at_risk for r in watch.customers)
    digest.intro = (
        f"Scored {scored}: {_plural(watch.total, 'paying customer')} at medium or high risk "
        f"({watch.high:,} high), {_money(watch.value_at_risk, currency)} of value at risk."
        + (
            f" The {len(watch.customers)} below hold {_money(shown_value, currency)} of it."
            if watch.customers
            else ""
        )
        + (
            f" Changes are since your last digest on {since}."
            if since
            else " Changes will show from the next digest on."
        )
    )
    months = settings.value_horizon_months
    digest.notes = [
        "Value at risk = churn risk × value at stake: what the customer would spend in the next "
        f"{months} months were they to stay (the customer value model), plus open deals; for a "
        "customer with too little history for the model, the last 12 months' purchases."
    ]
    left_out = []
    if watch.leads_left_out:
        left_out.append(
            f"{_plural(watch.leads_left_out, 'lead')} who never bought (not churn: their open "
            "deals and unanswered mail are in the follow-ups digest)"
        )
    if watch.churned_left_out:
        left_out.append(f"{_plural(watch.churned_left_out, 'customer')} already marked churned")
    if left_out:
        digest.notes.append("Not listed: " + " and ".join(left_out) + ".")
    if any(r.score.method == "cold_start" for r in rows):
        digest.notes.append(
            "Risks are estimates from silence against each customer's usual rhythm: "
            "there is not enough history to train a model yet."
        )
    return digest


def _no_longer_at_risk(
    session: Session,
    run_id: int,
    listed_before: dict[int, dict[str, Any]],
    *,
    shown: set[int],
    since: str | None,
) -> Section:
    """Customers the last digest listed whose risk has since fallen to low (or who were marked
    churned): the good news, and the end of the story for the ones that left."""
    gone = [cid for cid in listed_before if cid not in shown]
    section = Section("no_longer", f"No longer at risk since {since}")
    if not gone:
        return section
    now_scores = insights.probabilities(session, run_id=run_id, customer_ids=gone)
    customers = {c.id: c for c in session.exec(select(Customer).where(col(Customer.id).in_(gone)))}
    for cid in gone:
        customer = customers.get(cid)
        if customer is None:
            continue
        before = listed_before[cid].get("p")
        was = f" (was {before:.0%})" if isinstance(before, int | float) else ""
        if customer.status == "churned":
            section.summary.append(f"{_customer_title(customer)}: marked churned{was}")
        elif cid in now_scores and now_scores[cid][1] == "low":
            section.summary.append(
                f"{_customer_title(customer)}: risk down to {now_scores[cid][0]:.0%}{was}"
            )
    section.heading += f" ({len(section.summary)})"
    return section


# ---------------------------------------------------------------- follow-ups


def _day_bounds(now: datetime, tz: str) -> tuple[datetime, datetime]:
    local = now.astimezone(ZoneInfo(tz))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(ZoneInfo("UTC")), (start + timedelta(days=1)).astimezone(
        ZoneInfo("UTC")
    )


# The follow-up rules' findings, as digest sections: (kind, key, heading, in the team roll-up).
FINDING_SECTIONS = (
    (
        "rotting_deal",
        "rotting",
        "Deals with no next step",
        ("deal with no next step", "deals with no next step"),
    ),
    (
        "close_date_passed",
        "close_date",
        "Close date passed",
        ("deal past its close date", "deals past their close date"),
    ),
    (
        "unanswered_email",
        "unanswered",
        "Unanswered customer emails",
        ("unanswered email", "unanswered emails"),
    ),
    (
        "going_quiet",
        "quiet",
        "Customers going quiet",
        ("customer going quiet", "customers going quiet"),
    ),
)
_DEAL_KINDS = ("rotting_deal", "close_date_passed")


def _user_ref(user: User) -> str:
    return user.email or f"#{user.id}"


def build_followups_digest(
    session: Session,
    settings: Settings,
    *,
    user: User,
    now: datetime,
    limit: int | None = SECTION_SHOWN,
) -> Digest:
    tz = user.timezone or settings.timezone
    digest = Digest(
        kind="followups",
        title=TITLES["followups"],
        recipient=user.name,
        generated_at=now,
        tz=tz,
        intro=f"Good morning {user.name.split()[0]}: here is what needs you today.",
    )
    see_all = f"crmbot digest preview followups --for {_user_ref(user)} --all"
    today_start, tomorrow = _day_bounds(now, tz)
    due = list(
        session.exec(
            select(FollowUp)
            .where(
                FollowUp.owner_id == user.id,
                col(FollowUp.status).in_([FollowUpStatus.open, FollowUpStatus.snoozed]),
                FollowUp.due_at < tomorrow,
            )
            .order_by(col(FollowUp.due_at))
        )
    )
    names = (
        {
            c.id: c.name
            for c in session.exec(
                select(Customer).where(col(Customer.id).in_({f.customer_id for f in due}))
            )
        }
        if due
        else {}
    )
    local = ZoneInfo(tz)

    def fu_item(f: FollowUp) -> Item:
        when = f.due_at.astimezone(local)
        return Item(
            title=names.get(f.customer_id, f"Customer #{f.customer_id}"),
            details=[
                f"Due {when:%a %d %b %H:%M} {when.tzname()}" + (f" · {f.note}" if f.note else "")
            ],
            customer_id=f.customer_id,
            follow_up_id=f.id,
        )

    overdue = [f for f in due if f.due_at < today_start]
    today = [f for f in due if f.due_at >= today_start]
    digest.sections = [
        _capped(
            Section(
                "overdue", f"Overdue follow-ups ({len(overdue):,})", [fu_item(f) for f in overdue]
            ),
            len(overdue),
            limit,
            see_all,
        ),
        _capped(
            Section("today", f"Due today ({len(today):,})", [fu_item(f) for f in today]),
            len(today),
            limit,
            see_all,
        ),
    ]
    counts = insights.finding_counts(session, owner_id=user.id)
    for kind, key, heading, _label in FINDING_SECTIONS:
        total = counts.get((user.id, kind), 0)
        # Deals are ranked by what they are worth, so every one of them is read; the others
        # keep the rules' order (most severe, then oldest first) and are read up to the cap.
        findings = (
            insights.findings_for(
                session, owner_id=user.id, kind=kind, limit=None if kind in _DEAL_KINDS else limit
            )
            if total
            else []
        )
        items = _finding_items(session, settings, findings)
        digest.sections.append(
            _share_common_action(
                _capped(Section(key, f"{heading} ({total:,})", items), total, limit, see_all)
            )
        )
    digest.sections.append(
        _share_common_action(
            _low_satisfaction(session, user=user, now=now, limit=limit, see_all=see_all)
        )
    )
    digest.sections.append(_cross_sell(session, user=user, limit=limit, see_all=see_all))
    if user.role in (Role.manager, Role.admin):
        digest.sections.append(_team_rollup(session, now=now))
    return digest


def _low_satisfaction(
    session: Session, *, user: User, now: datetime, limit: int | None, see_all: str
) -> Section:
    """Survey ratings of 1 or 2 in the last week from this rep's customers (a manager's or
    admin's: everyone's), to act on."""
    owner = None if user.role in (Role.manager, Role.admin) else user.id
    rows = surveys.low_scores(session, since=now - timedelta(days=7), owner_id=owner, limit=None)
    items = [
        Item(
            title=name,
            details=[f"Rated {rating}/5" + (f": {comment}" if comment else "")],
            action="Call them about it.",
            customer_id=cid,
            headline=f"{rating}/5",
        )
        for cid, name, rating, comment in rows
    ]
    section = Section("low_csat", f"Low satisfaction scores ({len(items):,})", items)
    return _capped(section, len(items), limit, see_all)


def _cross_sell(session: Session, *, user: User, limit: int | None, see_all: str) -> Section:
    """The rep's open deals whose customer the rules suggest a next product for, the biggest
    deal first: something to mention while the conversation is open. (A rep has hundreds of
    open deals at most, so all are read and the section capped here.)"""
    rows = insights.cross_sell(session, owner_id=user.id)
    total = len(rows)
    items = [
        Item(
            title=f"{r.deal_title} · {r.customer_name}",
            details=[f"Suggest {r.product}: {r.reason}"],
            action=f"Mention {r.product} while the deal is open.",
            customer_id=r.customer_id,
            deal_id=r.deal_id,
            headline=_money(r.deal_amount, r.currency or ""),
        )
        for r in rows
    ]
    section = Section("cross_sell", f"Cross-sell ideas ({total:,})", items)
    return _capped(section, total, limit, see_all)


def _finding_items(session: Session, settings: Settings, findings: Sequence[Any]) -> list[Item]:
    """Findings as items; deals with their value, the most valuable first (amount weighed by
    the stage's win probability: what the pipeline stands to lose)."""
    if not findings:
        return []
    customer_names = {
        c.id: c.name
        for c in session.exec(
            select(Customer).where(
                col(Customer.id).in_({f.customer_id for f in findings if f.customer_id})
            )
        )
    }
    deal_ids = {f.deal_id for f in findings if f.deal_id}
    deals = (
        {d.id: d for d in session.exec(select(Deal).where(col(Deal.id).in_(deal_ids)))}
        if deal_ids
        else {}
    )
    ranked: list[tuple[Decimal, int, Item]] = []
    for n, f in enumerate(findings):
        title = customer_names.get(f.customer_id, "") if f.customer_id else ""
        details = [f.why]
        weight = Decimal(0)
        deal = deals.get(f.deal_id) if f.deal_id else None
        if deal is not None:
            title = f"{deal.title} · {title}" if title else deal.title
            probability = settings.stage_probability(deal.stage)
            weight = (deal.amount or Decimal(0)) * probability
            if deal.amount is not None:
                worth = _money(deal.amount, deal.currency)
                details.insert(0, f"{worth} in {deal.stage} ({probability:.0%} likely to win)")
        ranked.append(
            (
                -weight,
                n,
                Item(
                    title=title or "(no customer)",
                    details=details,
                    action=f.action,
                    customer_id=f.customer_id,
                    deal_id=f.deal_id,
                ),
            )
        )
    return [item for _w, _n, item in sorted(ranked, key=lambda t: (t[0], t[1]))]


def _team_rollup(session: Session, *, now: datetime) -> Section:
    """For managers: per rep, what is waiting on them, by kind."""
    stmt = (
        sa.select(FollowUp.owner_id, sa.func.count())
        .where(
            col(FollowUp.status).in_([FollowUpStatus.open, FollowUpStatus.snoozed]),
            FollowUp.due_at < now,
        )
        .group_by(FollowUp.owner_id)
    )
    overdue = {owner: int(n) for owner, n in session.execute(stmt)}
    counts = insights.finding_counts(session)
    owners = set(overdue) | {owner for owner, _kind in counts}
    names = _owner_names(session, owners)

    def load(owner: int | None) -> int:
        return overdue.get(owner, 0) + sum(
            counts.get((owner, kind), 0) for kind, *_ in FINDING_SECTIONS
        )

    lines = []
    for owner in sorted(owners, key=lambda o: (-load(o), names.get(o, "") if o else "~")):  # type: ignore[arg-type]
        parts = [_plural(overdue.get(owner, 0), "overdue follow-up")] if overdue.get(owner) else []
        for kind, _key, _heading, (one, many) in FINDING_SECTIONS:
            n = counts.get((owner, kind), 0)
            if n:
                parts.append(_plural(n, one, many))
        if parts:
            lines.append(
                f"{names.get(owner, 'Unassigned') if owner else 'Unassigned'}: " + ", ".join(parts)
            )  # type: ignore[arg-type]
    return Section("team", "Team roll-up", summary=lines[:20])


# ---------------------------------------------------------------- segments

# The segments worth a manager's attention, each with what to do about its accounts.
SEGMENT_ACTIONS = {
    "Can't Lose Them": "Call them yourself: they were among our best buyers and have gone quiet.",
    "At Risk": "Win them back: a personal note with an offer that fits what they used to buy.",
    "About to Sleep": "Wake them up: tell them what is new that fits what they bought.",
    "Need Attention": "Check in before they slip: ask how things are going and what they need.",
    "Champions": "Thank them, and ask for a referral, a review or a case study.",
}
WORTH_ATTENTION = tuple(SEGMENT_ACTIONS)
ATTENTION_SHOWN = 3


TOPIC_PERIOD = timedelta(days=7)


def _rising_topics(session: Session, now: datetime) -> Section:
    """Per segment, the terms whose share of what its customers said grew most this week
    against the week before (see crm.services.insights.segment_topics)."""
    rows = insights.segment_topics(session, since=now - TOPIC_PERIOD, until=now)
    lines = [
        f"{r.segment}: "
        + ", ".join(
            f"{t} ({a:.0%} of what was said, {b:.0%} the week before)" for t, a, b in r.rising
        )
        for r in rows
        if r.rising
    ]
    return Section("topics", "Rising topics this week", summary=lines)


def build_segments_digest(
    session: Session,
    settings: Settings,
    *,
    now: datetime,
    recipient: str = "team",
    top: int | None = ATTENTION_SHOWN,
    last: LastDigest | None = None,
) -> Digest:
    """Segment sizes and who moved since ``last`` (the last segments digest the recipient got),
    and the accounts in the segments that need attention, most valuable first."""
    from crm.models import CustomerSegment

    intro = "How the customer base is spread across segments, and who moved."
    digest, found = _team_digest(session, settings, "segments", now, recipient, intro, last)
    if found is None:
        return digest
    run, compare_run, since = found
    counts = (
        insights.segment_counts(session, since_run_id=compare_run)
        if compare_run
        else insights.segment_counts(session)
    )
    if compare_run is None:  # nothing to compare with yet: sizes only
        counts = [insights.SegmentCount(c.segment, c.customers, None) for c in counts]
    if not counts:
        return digest
    everyone = sum(c.customers for c in counts)
    size_lines = []
    for row in counts:
        change = ""
        if row.previous is not None and row.previous != row.customers:
            change = f", {row.customers - row.previous:+,} since {since}"
        share = row.customers / everyone
        shown = "<1%" if 0 < share < 0.005 else f"{share:.0%}"
        size_lines.append(f"{row.segment}: {row.customers:,} ({shown}{change})")
    moves = insights.segment_moves(session, since_run_id=compare_run) if compare_run else []
    move_lines = [f"{n:,} moved from {a} to {b}" for a, b, n in moves[:8]]
    if len(moves) > 8:
        move_lines.append(
            f"and {_plural(sum(n for *_ab, n in moves[8:]), 'more move')} between other segments"
        )
    digest.sections = [
        Section("sizes", "Segment sizes", summary=size_lines),
        Section("moves", f"Movement since your last digest on {since}", summary=move_lines),
        _rising_topics(session, now),
    ]
    sizes = {c.segment: c.customers for c in counts}
    purchase_total = sa.func.coalesce(sa.func.sum(Interaction.amount), 0)
    for name, action in SEGMENT_ACTIONS.items():
        if not sizes.get(name):
            continue
        stmt = (
            sa.select(Customer, purchase_total)
            .join(CustomerSegment, CustomerSegment.customer_id == Customer.id)
            .outerjoin(
                Interaction,
                sa.and_(
                    Interaction.customer_id == Customer.id,
                    Interaction.channel == "purchase",
                    col(Interaction.deleted_at).is_(None),
                ),
            )
            .where(CustomerSegment.run_id == run.id, CustomerSegment.rfm_segment == name)
            .group_by(Customer.id)
            .order_by(purchase_total.desc(), Customer.id)
        )
        if top is not None:
            stmt = stmt.limit(top)
        rows = list(session.execute(stmt))
        ids = [c.id for c, _v in rows]
        purchases, touches = _latest_at(session, ids, purchases=True), _last_touch(session, ids)
        owners = _owner_names(session, {c.owner_id for c, _v in rows})
        facts = [
            f"Last purchase {_ago(purchases.get(c.id), now)}"  # type: ignore[arg-type]
            f" · last touch {_ago(touches.get(c.id), now)}"  # type: ignore[arg-type]
            f" · owner {owners.get(c.owner_id, 'nobody')}"  # type: ignore[arg-type]
            for c, _value in rows
        ]
        items = [
            Item(
                title=_customer_title(c),
                headline=f"{_money(value, settings.default_currency)} bought in all",
                details=[line],
                action=action,
                customer_id=c.id,
            )
            for (c, value), line in zip(rows, facts, strict=True)
        ]
        section = Section(
            f"attention:{name}",
            f"{name}: the biggest buyers ({len(items)} of {sizes[name]:,})",
            items,
        )
        digest.sections.append(
            _share_common_action(
                _capped(section, sizes[name], top, "crmbot digest preview segments --all")
            )
        )
    digest.memory = {"analytics_run": run.id}
    digest.chart_png, digest.chart_alt = segment_chart(counts)
    return digest


def segment_chart(counts: Sequence[insights.SegmentCount]) -> tuple[bytes | None, str]:
    """A small horizontal bar chart of every segment's size (PNG), or None when matplotlib is
    missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the chart is a nicety; the digest reads well without it
        return None, ""
    rows = list(counts)[::-1]  # largest at the top
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


def build_digest(
    session: Session,
    settings: Settings,
    kind: str,
    *,
    now: datetime,
    user: User | None = None,
    last: LastDigest | None = None,
    everything: bool = False,
) -> Digest:
    """The digest of this kind as of ``now``, compared with ``last`` (the last one the recipient
    got); follow-ups are per user and need one. ``everything`` lifts the caps."""
    if kind == "followups":
        if user is None:
            raise ValueError("the follow-ups digest is built for one user")
        digest = build_followups_digest(
            session, settings, user=user, now=now, limit=None if everything else SECTION_SHOWN
        )
    elif kind == "churn":
        digest = build_churn_digest(
            session, settings, now=now, last=last, limit=None if everything else CHURN_SHOWN
        )
    elif kind == "segments":
        digest = build_segments_digest(
            session, settings, now=now, last=last, top=None if everything else ATTENTION_SHOWN
        )
    else:
        raise ValueError(f"unknown digest {kind!r}")
    digest.memory["as_of"] = now.isoformat()
    return digest


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


CustomerLink = Callable[[int], "str | None"]


def template_context(digest: Digest, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What every digest template sees: the digest, its non-empty sections, the local date, and
    ``link(item)``: where the item's customer opens (None without a link)."""
    local = digest.generated_at.astimezone(ZoneInfo(digest.tz))
    context: dict[str, Any] = {
        "digest": digest,
        "sections": digest.visible_sections,
        "date": f"{local:%A %d %B %Y}",
        "link": lambda item: None,
    }
    return {**context, **(extra or {})}


def _item_link(customer_link: CustomerLink | None) -> Callable[[Item], str | None]:
    def link(item: Item) -> str | None:
        if customer_link is None or item.customer_id is None:
            return None
        return customer_link(item.customer_id)

    return link


def render_text(
    digest: Digest, *, unsubscribe: str | None = None, customer_link: CustomerLink | None = None
) -> str:
    context = template_context(
        digest, {"unsubscribe": unsubscribe, "link": _item_link(customer_link)}
    )
    return text_environment().get_template("digests/digest.txt.j2").render(**context)


def render_html(
    digest: Digest,
    *,
    unsubscribe: str | None = None,
    chart_cid: str | None = None,
    customer_link: CustomerLink | None = None,
) -> str:
    context = template_context(
        digest,
        {"unsubscribe": unsubscribe, "chart_cid": chart_cid, "link": _item_link(customer_link)},
    )
    return _html_env().get_template("digests/digest.html.j2").render(**context)
