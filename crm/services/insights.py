"""Reading what analytics stored: a customer's segment and churn risk, the at-risk lists,
segment sizes.

Writers live in ``crm.analytics``; every reader here looks at the latest finished run and,
where change matters, the run before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased, defer
from sqlmodel import Session, col, select

from crm.models import AnalyticsRun, ChurnScore, Customer, CustomerSegment, CustomerStatus, Finding
from crm.services.values import latest_value


@dataclass(frozen=True)
class Insight:
    segment: str | None
    cluster_name: str | None
    churn_probability: float | None
    risk_level: str | None
    reasons: list[str]
    method: str | None
    scored_at: datetime | None
    previous_probability: float | None = None
    expected_value: float | None = None  # expected spend over the value horizon
    p_alive: float | None = None
    value_horizon_months: int | None = None


@dataclass(frozen=True)
class AtRisk:
    customer: Customer
    score: ChurnScore
    previous_probability: float | None

    @property
    def value_at_risk(self) -> float:
        """What the customer's leaving would likely cost: risk x value at stake."""
        return self.score.probability * (self.score.value_at_stake or 0.0)


@dataclass(frozen=True)
class SegmentCount:
    segment: str
    customers: int
    previous: int | None


def finished_runs(session: Session, kind: str = "refresh", limit: int = 2) -> list[AnalyticsRun]:
    """The latest finished runs, newest first; their model metadata loads only if read."""
    stmt = (
        select(AnalyticsRun)
        .options(defer(AnalyticsRun.meta))  # type: ignore[arg-type]
        .where(AnalyticsRun.kind == kind, AnalyticsRun.status == "done")
        .order_by(col(AnalyticsRun.finished_at).desc(), col(AnalyticsRun.id).desc())
        .limit(limit)
    )
    return list(session.exec(stmt))


def latest_run(session: Session, kind: str = "refresh") -> AnalyticsRun | None:
    runs = finished_runs(session, kind, 1)
    return runs[0] if runs else None


def _nth_latest_run(n: int) -> sa.ScalarSelect[Any]:
    return (
        sa.select(col(AnalyticsRun.id))
        .where(col(AnalyticsRun.kind) == "refresh", col(AnalyticsRun.status) == "done")
        .order_by(col(AnalyticsRun.finished_at).desc(), col(AnalyticsRun.id).desc())
        .offset(n)
        .limit(1)
        .scalar_subquery()
    )


def _customer_insight_statement() -> sa.Select[Any]:
    """The latest finished run with the customer's segment and score in it and their score in
    the run before: one row if any run has finished, none otherwise."""
    segment, score, previous = aliased(CustomerSegment), aliased(ChurnScore), aliased(ChurnScore)
    customer: Any = sa.bindparam("customer_id")
    return (
        sa.select(  # type: ignore[call-overload]
            AnalyticsRun.finished_at,
            segment.id,
            segment.rfm_segment,
            segment.cluster_name,
            score.id,
            score.probability,
            score.risk_level,
            score.reasons,
            score.method,
            previous.probability,
        )
        .select_from(AnalyticsRun)
        .outerjoin(
            segment, sa.and_(segment.run_id == AnalyticsRun.id, segment.customer_id == customer)
        )
        .outerjoin(score, sa.and_(score.run_id == AnalyticsRun.id, score.customer_id == customer))
        .outerjoin(
            previous,
            sa.and_(previous.run_id == _nth_latest_run(1), previous.customer_id == customer),
        )
        .where(AnalyticsRun.id == _nth_latest_run(0))
    )


_CUSTOMER_INSIGHT = _customer_insight_statement()


def customer_insight_and_scored(session: Session, customer_id: int) -> tuple[Insight | None, bool]:
    """(The customer's segment and risk from the latest run, or None if it has none for them;
    whether any scoring run has finished at all), read in one query: a card shows both."""
    row = session.execute(_CUSTOMER_INSIGHT, {"customer_id": customer_id}).first()
    if row is None:
        return None, False
    finished_at, segment_id, rfm, cluster, score_id, probability, level, reasons, method, before = (
        row
    )
    if segment_id is None and score_id is None:
        return None, True
    worth = latest_value(session, customer_id)
    return (
        Insight(
            expected_value=worth.expected_spend if worth else None,
            p_alive=worth.p_alive if worth else None,
            value_horizon_months=worth.horizon_months if worth else None,
            segment=rfm,
            cluster_name=cluster,
            churn_probability=probability,
            risk_level=level,
            reasons=list(reasons or []),
            method=method,
            scored_at=finished_at,
            previous_probability=before,
        ),
        True,
    )


def customer_insight(session: Session, customer_id: int) -> Insight | None:
    """The customer's segment and risk from the latest run; None when nothing is scored yet."""
    return customer_insight_and_scored(session, customer_id)[0]


def at_risk_customers(
    session: Session, *, limit: int = 10, owner_id: int | None = None, min_level: str = "medium"
) -> list[AtRisk]:
    """Customers with the highest churn risk in the latest run (optionally one owner's)."""
    runs = finished_runs(session)
    if not runs:
        return []
    levels = {"low": ["low", "medium", "high"], "medium": ["medium", "high"], "high": ["high"]}[
        min_level
    ]
    stmt = (
        select(ChurnScore, Customer)
        .join(Customer, col(Customer.id) == ChurnScore.customer_id)
        .where(ChurnScore.run_id == runs[0].id, col(ChurnScore.risk_level).in_(levels))
        .order_by(col(ChurnScore.probability).desc(), col(ChurnScore.customer_id))
        .limit(limit)
    )
    if owner_id is not None:
        stmt = stmt.where(Customer.owner_id == owner_id)
    rows = list(session.exec(stmt))
    previous: dict[int, float] = {}
    if len(runs) > 1 and rows:
        ids = [score.customer_id for score, _ in rows]
        previous = dict(
            session.exec(
                select(ChurnScore.customer_id, ChurnScore.probability).where(
                    ChurnScore.run_id == runs[1].id, col(ChurnScore.customer_id).in_(ids)
                )
            ).all()
        )
    return [
        AtRisk(customer=c, score=s, previous_probability=previous.get(s.customer_id))
        for s, c in rows
    ]


def _compared_runs(
    session: Session, since_run_id: int | None
) -> tuple[AnalyticsRun | None, int | None]:
    """(The latest run, the run to compare it with): ``since_run_id`` when given, else the
    run before the latest."""
    runs = finished_runs(session)
    if not runs:
        return None, None
    if since_run_id is not None:
        return runs[0], since_run_id
    return runs[0], runs[1].id if len(runs) > 1 else None


def segment_counts(session: Session, *, since_run_id: int | None = None) -> list[SegmentCount]:
    """Customers per RFM segment in the latest run, with the count in ``since_run_id`` (by
    default the run before)."""
    latest, before_id = _compared_runs(session, since_run_id)
    if latest is None:
        return []

    def counts(run_id: int) -> dict[str, int]:
        stmt = (
            sa.select(CustomerSegment.rfm_segment, sa.func.count())
            .where(CustomerSegment.run_id == run_id)
            .group_by(CustomerSegment.rfm_segment)
        )
        return {segment: int(n) for segment, n in session.execute(stmt)}

    now = counts(latest.id)  # type: ignore[arg-type]
    before = counts(before_id) if before_id is not None else None
    return [
        SegmentCount(segment=s, customers=n, previous=None if before is None else before.get(s, 0))
        for s, n in sorted(now.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def segment_moves(
    session: Session, *, since_run_id: int | None = None
) -> list[tuple[str, str, int]]:
    """(from segment, to segment, customers) between ``since_run_id`` (by default the run
    before the latest) and the latest run, largest first."""
    latest, before_id = _compared_runs(session, since_run_id)
    if latest is None or before_id is None:
        return []
    new, old = sa.orm.aliased(CustomerSegment), sa.orm.aliased(CustomerSegment)
    stmt = (
        sa.select(old.rfm_segment, new.rfm_segment, sa.func.count())
        .join(old, sa.and_(old.customer_id == new.customer_id, old.run_id == before_id))
        .where(new.run_id == latest.id, old.rfm_segment != new.rfm_segment)
        .group_by(old.rfm_segment, new.rfm_segment)
        .order_by(sa.func.count().desc(), old.rfm_segment, new.rfm_segment)
    )
    return [(a, b, int(n)) for a, b, n in session.execute(stmt)]


def findings_for(
    session: Session,
    *,
    owner_id: int | None = None,
    kind: str | None = None,
    limit: int | None = 100,
) -> list[Finding]:
    """What the follow-up rules found in the latest run (optionally one owner's, one kind),
    most severe first."""
    run = latest_run(session)
    if run is None:
        return []
    stmt = select(Finding).where(Finding.run_id == run.id)
    if owner_id is not None:
        stmt = stmt.where(Finding.owner_id == owner_id)
    if kind is not None:
        stmt = stmt.where(Finding.kind == kind)
    stmt = stmt.order_by(col(Finding.severity).desc(), col(Finding.since), col(Finding.id))
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt))


def finding_counts(
    session: Session, *, owner_id: int | None = None
) -> dict[tuple[int | None, str], int]:
    """Everything the follow-up rules flagged in the latest run, {(owner, kind): n} (owner None:
    nobody's); only ``owner_id``'s when given. A run stores only each owner's most urgent
    findings and keeps the count of all of them; a run from before those counts were kept
    stored every finding, so its rows are counted."""
    run = latest_run(session)
    if run is None:
        return {}
    flagged = (run.meta or {}).get("findings", {}).get("flagged")
    if flagged is not None:
        out: dict[tuple[int | None, str], int] = {}
        for kind, per_owner in flagged.items():
            for owner, n in per_owner.items():
                key = None if owner == "none" else int(owner)
                if owner_id is None or key == owner_id:
                    out[(key, kind)] = int(n)
        return out
    stmt = (
        sa.select(Finding.owner_id, Finding.kind, sa.func.count())
        .where(Finding.run_id == run.id)
        .group_by(Finding.owner_id, Finding.kind)
    )
    if owner_id is not None:
        stmt = stmt.where(Finding.owner_id == owner_id)
    return {(owner, kind): int(n) for owner, kind, n in session.execute(stmt)}


# ------------------------------------------------------------------ the churn watch list

WATCH_LEVELS = ("medium", "high")


def _has_bought(score: Any) -> sa.ColumnElement[bool]:
    """The customer had bought by the scoring run's cutoff (a purchase or a won deal).

    The same run segments every customer on the same cutoff and scores those who never
    bought 0 on both frequency and monetary value ("Prospect"): a lead who wrote to us but
    never bought can be at risk of going quiet, but not of churning.
    """
    seg = aliased(CustomerSegment)
    return (
        sa.exists()
        .where(
            seg.run_id == score.run_id,
            seg.customer_id == score.customer_id,
            sa.or_(seg.frequency_score > 0, seg.monetary_score > 0),
        )
        .correlate_except(seg)
    )


def _value_at_risk(score: Any) -> sa.ColumnElement[float]:
    return score.probability * sa.func.coalesce(score.value_at_stake, 0.0)


@dataclass(frozen=True)
class WatchList:
    """Paying customers at medium or high churn risk in one run, most value at risk first."""

    customers: list[AtRisk]  # the first ``limit`` of them
    total: int  # how many there are in all
    high: int  # of them at high risk
    value_at_risk: float  # summed over all of them
    leads_left_out: int  # at medium or high risk but never bought: not churn
    churned_left_out: int  # already marked churned by the team


def churn_watchlist(
    session: Session,
    *,
    run_id: int,
    limit: int | None,
    owner_id: int | None = None,
    compare_run_id: int | None = None,
) -> WatchList:
    """The customers whose leaving would cost most (risk x value at stake), paying customers
    only, with each one's probability in ``compare_run_id`` (e.g. the run the recipient's last
    digest was built from) as ``previous_probability``."""
    at_watch_level = sa.and_(
        ChurnScore.run_id == run_id, col(ChurnScore.risk_level).in_(WATCH_LEVELS)
    )
    bought = _has_bought(ChurnScore)
    still_ours = Customer.status != CustomerStatus.churned
    watched = sa.and_(bought, still_ours)
    owner = [Customer.owner_id == owner_id] if owner_id is not None else []
    totals = session.execute(
        sa.select(
            sa.func.count().filter(watched),
            sa.func.count().filter(watched, ChurnScore.risk_level == "high"),
            sa.func.coalesce(sa.func.sum(_value_at_risk(ChurnScore)).filter(watched), 0.0),
            sa.func.count().filter(sa.not_(bought)),
            sa.func.count().filter(bought, sa.not_(still_ours)),
        )
        .select_from(ChurnScore)
        .join(Customer, col(Customer.id) == ChurnScore.customer_id)
        .where(at_watch_level, *owner)
    ).one()
    stmt = (
        select(ChurnScore, Customer)
        .join(Customer, col(Customer.id) == ChurnScore.customer_id)
        .where(at_watch_level, watched, *owner)
        .order_by(
            _value_at_risk(ChurnScore).desc(),
            col(ChurnScore.probability).desc(),
            col(ChurnScore.customer_id),
        )
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = list(session.exec(stmt))
    before = (
        probabilities(session, run_id=compare_run_id, customer_ids=[s.customer_id for s, _ in rows])
        if compare_run_id is not None
        else {}
    )
    return WatchList(
        customers=[
            AtRisk(customer=c, score=s, previous_probability=before.get(s.customer_id, (None,))[0])
            for s, c in rows
        ],
        total=int(totals[0]),
        high=int(totals[1]),
        value_at_risk=float(totals[2] or 0.0),
        leads_left_out=int(totals[3]),
        churned_left_out=int(totals[4]),
    )


def churn_risers_since(
    session: Session,
    *,
    run_id: int,
    since_run_id: int,
    min_rise: float,
    limit: int | None,
    owner_id: int | None = None,
    exclude: list[int] | None = None,
) -> tuple[list[AtRisk], int]:
    """Paying customers whose churn probability rose by at least ``min_rise`` since the run
    ``since_run_id`` (at any level: a jump from a low score is news too), most value at risk
    first, and how many there are in all."""
    new, old = aliased(ChurnScore), aliased(ChurnScore)
    where = [
        new.run_id == run_id,
        new.probability - old.probability >= min_rise,
        _has_bought(new),
        Customer.status != CustomerStatus.churned,
    ]
    if owner_id is not None:
        where.append(Customer.owner_id == owner_id)
    if exclude:
        where.append(col(new.customer_id).not_in(exclude))

    def joined(stmt: Any) -> Any:
        return (
            stmt.join(old, sa.and_(old.customer_id == new.customer_id, old.run_id == since_run_id))
            .join(Customer, col(Customer.id) == new.customer_id)
            .where(*where)
        )

    total = session.execute(joined(sa.select(sa.func.count()).select_from(new))).scalar_one()
    stmt = joined(select(new, Customer, old.probability)).order_by(
        _value_at_risk(new).desc(), new.probability.desc(), new.customer_id
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = [
        AtRisk(customer=c, score=score, previous_probability=before)
        for score, c, before in session.exec(stmt)
    ]
    return rows, int(total)


def probabilities(
    session: Session, *, run_id: int, customer_ids: list[int]
) -> dict[int, tuple[float, str]]:
    """(probability, risk level) of these customers in one run; absent when not scored there."""
    if not customer_ids:
        return {}
    stmt = sa.select(ChurnScore.customer_id, ChurnScore.probability, ChurnScore.risk_level).where(
        ChurnScore.run_id == run_id, col(ChurnScore.customer_id).in_(customer_ids)
    )
    return {cid: (float(p), level) for cid, p, level in session.execute(stmt)}


def run_exists(session: Session, run_id: int) -> bool:
    return session.get(AnalyticsRun, run_id) is not None


# ------------------------------------------------------------------ churn reasons, read back

# The stored reasons are sentences written by ``crm.analytics.churn`` (one per group of
# features the model weighed). Reading them back into kinds lets a digest choose an action
# that fits the reason; wording this table does not know is kept as text, with kind None.
_REASON_PATTERNS: tuple[tuple[str, re.Pattern[str], tuple[int, ...]], ...] = (
    # (kind, wording, the figures of a wording that has none)
    ("unanswered", re.compile(r"no reply to (\d+) emails? in (\d+) days?"), ()),
    ("follow_ups", re.compile(r"(\d+) follow-ups? overdue"), ()),
    ("deals", re.compile(r"lost (\d+) deals? in the last (\d+) days?"), ()),
    ("recency", re.compile(r"no purchase in (\d+) days?(?: \(usually every (\d+|day)\))?"), ()),
    ("orders", re.compile(r"(?:orders|spend) down (\d+)%"), ()),
    ("frequency", re.compile(r"has never bought"), (0,)),
    ("frequency", re.compile(r"bought only once"), (1,)),
    ("frequency", re.compile(r"only (\d+) purchases so far"), ()),
    ("silence", re.compile(r"no message from them in (\d+) days?"), ()),
    ("outreach", re.compile(r"no outreach from us in (\d+) days?|we have never reached out"), ()),
    ("activity", re.compile(r"interactions down (\d+)%"), ()),
    ("activity_low", re.compile(r"only (\d+) interactions? in 90 days"), ()),
    ("activity_low", re.compile(r"no interactions in 90 days"), (0,)),
    ("won_deal_only", re.compile(r"no purchase besides (\d+) won deals?"), ()),
    ("tenure", re.compile(r"new customer \((\d+) days?\)"), ()),
    ("satisfaction", re.compile(r"rated us (\d+)/5 in their last survey"), ()),
    ("method", re.compile(r"cold start: "), ()),
)


@dataclass(frozen=True)
class Reason:
    text: str
    # The feature group it speaks of (see crm.analytics.churn.REASON_GROUPS), or a finer kind
    # of one (activity_low, won_deal_only).
    kind: str | None
    # The figures in it, in order ("usually every day" is 1, "has never bought" 0 purchases).
    numbers: tuple[int | None, ...] = ()


def read_reason(text: str) -> Reason:
    for kind, pattern, figures in _REASON_PATTERNS:
        found = pattern.match(text)
        if found:
            numbers = figures or tuple(
                None if g is None else 1 if g == "day" else int(g) for g in found.groups()
            )
            return Reason(text=text, kind=kind, numbers=numbers)
    return Reason(text=text, kind=None)


def next_products(session: Session, customer_id: int, limit: int = 3) -> list[str]:
    """The products the latest finished run suggests for the customer, best first, each as
    "Product name: reason"; empty when it suggests none."""
    from crm.models import Product, ProductSuggestion

    stmt = (
        sa.select(Product.name, ProductSuggestion.reason)
        .join(Product, Product.id == ProductSuggestion.product_id)
        .where(
            ProductSuggestion.run_id == _nth_latest_run(0),
            ProductSuggestion.customer_id == customer_id,
        )
        .order_by(ProductSuggestion.rank)
        .limit(limit)
    )
    return [f"{name}: {reason}" for name, reason in session.execute(stmt)]


@dataclass(frozen=True)
class CrossSell:
    """An open deal whose customer the latest run suggests a next product for."""

    customer_id: int
    customer_name: str
    deal_id: int
    deal_title: str
    deal_amount: float
    currency: str | None
    product: str
    reason: str


def cross_sell(session: Session, *, owner_id: int | None) -> list[CrossSell]:
    """Open deals (``owner_id``'s, or everyone's when None) whose customer has a next-product
    suggestion in the latest finished run, the biggest deal first: a product to mention while
    the conversation is open. One row per customer (its biggest open deal), with the best
    suggestion the deal is not already about (its product named in the deal's title)."""
    from crm.models import Deal, DealStatus, Product, ProductSuggestion

    ranked = (
        sa.select(
            Deal.customer_id,
            col(Deal.id).label("deal_id"),
            Deal.title,
            Deal.amount,
            Deal.currency,
            sa.func.row_number()
            .over(
                partition_by=Deal.customer_id,
                order_by=(col(Deal.amount).desc(), col(Deal.id).desc()),
            )
            .label("place"),
        )
        .where(Deal.status == DealStatus.open)
        .where(sa.true() if owner_id is None else Deal.owner_id == owner_id)
        .subquery()
    )
    stmt = (
        sa.select(
            ranked.c.customer_id,
            Customer.name,
            ranked.c.deal_id,
            ranked.c.title,
            ranked.c.amount,
            ranked.c.currency,
            Product.name,
            ProductSuggestion.reason,
        )
        .join(Customer, Customer.id == ranked.c.customer_id)
        .join(ProductSuggestion, ProductSuggestion.customer_id == ranked.c.customer_id)
        .join(Product, Product.id == ProductSuggestion.product_id)
        .where(ranked.c.place == 1, ProductSuggestion.run_id == _nth_latest_run(0))
        .order_by(ranked.c.amount.desc(), ranked.c.deal_id, ProductSuggestion.rank)
    )
    picked: dict[int, CrossSell] = {}
    for cid, name, did, title, amount, cur, product, reason in session.execute(stmt):
        if cid in picked or product.casefold() in (title or "").casefold():
            continue
        picked[cid] = CrossSell(
            int(cid), name, int(did), title, float(amount or 0), cur, product, reason
        )
    return list(picked.values())


def talks_about(session: Session, customer_id: int) -> list[str]:
    """What the customer talks about: their keywords from the latest topics step (empty when
    none of their interactions has text yet)."""
    from crm.models import CustomerTopics

    row = session.get(CustomerTopics, customer_id)
    return list(row.keywords or []) if row is not None else []


@dataclass(frozen=True)
class SegmentTopics:
    segment: str
    topics: list[tuple[str, float, int]]  # (label, share of the topic weight, customers)
    terms: list[tuple[str, int]]  # the period's most used terms, with counts
    rising: list[tuple[str, float, float]]  # (term, share now, share in the period before)
    found_at: datetime | None  # when the topics were last found for the segment


def _segment_terms(
    session: Session, start: datetime, end: datetime, segment: str | None
) -> dict[str, dict[str, int]]:
    from crm.models import SegmentTerm

    stmt = (
        sa.select(SegmentTerm.segment, SegmentTerm.term, sa.func.sum(SegmentTerm.count))  # type: ignore[call-overload]
        .join(AnalyticsRun, AnalyticsRun.id == SegmentTerm.run_id)
        .where(
            AnalyticsRun.status == "done",
            col(AnalyticsRun.finished_at) >= start,
            col(AnalyticsRun.finished_at) < end,
        )
        .group_by(SegmentTerm.segment, SegmentTerm.term)
    )
    if segment is not None:
        stmt = stmt.where(SegmentTerm.segment == segment)
    out: dict[str, dict[str, int]] = {}
    for seg, term, count in session.execute(stmt):
        out.setdefault(str(seg), {})[str(term)] = int(count)
    return out


def segment_topics(
    session: Session, *, since: datetime, until: datetime, segment: str | None = None
) -> list[SegmentTopics]:
    """Per segment: its topics as last found, the most used terms of interactions read in
    [since, until), and the terms rising most against the period of the same length before."""
    from crm.models import SegmentTopic

    now = _segment_terms(session, since, until, segment)
    before = _segment_terms(session, since - (until - since), since, segment)
    latest = (
        sa.select(SegmentTopic.segment, sa.func.max(SegmentTopic.run_id).label("run_id"))  # type: ignore[call-overload]
        .group_by(SegmentTopic.segment)
        .subquery()
    )
    stmt = (
        sa.select(  # type: ignore[call-overload]
            SegmentTopic.segment,
            SegmentTopic.label,
            SegmentTopic.weight,
            SegmentTopic.customers,
            AnalyticsRun.finished_at,
        )
        .join(
            latest,
            sa.and_(
                latest.c.segment == SegmentTopic.segment, latest.c.run_id == SegmentTopic.run_id
            ),
        )
        .join(AnalyticsRun, AnalyticsRun.id == SegmentTopic.run_id)
        .order_by(SegmentTopic.segment, SegmentTopic.rank)
    )
    if segment is not None:
        stmt = stmt.where(SegmentTopic.segment == segment)
    found: dict[str, list[tuple[str, float, int]]] = {}
    when: dict[str, datetime | None] = {}
    for seg, label, weight, customers, finished in session.execute(stmt):
        found.setdefault(str(seg), []).append((str(label), float(weight), int(customers)))
        when[str(seg)] = finished
    names = sorted(set(found) | set(now))
    return [
        SegmentTopics(
            segment=name,
            topics=found.get(name, []),
            terms=sorted(
                _pairs_first(now.get(name, {})).items(), key=lambda kv: (-kv[1], kv[0])
            )[:10],
            rising=rising(now.get(name, {}), before.get(name, {})),
            found_at=when.get(name),
        )
        for name in names
    ]


def rising(
    now: dict[str, int], before: dict[str, int], *, top: int = 3, min_count: int = 3
) -> list[tuple[str, float, float]]:
    """Terms whose share of a segment's terms grew most from ``before`` to ``now``: (term, share
    now, share before), biggest growth first; a term needs ``min_count`` uses now."""
    now, before = _pairs_first(now), _pairs_first(before)
    total_now, total_before = sum(now.values()), sum(before.values())
    if not total_now or not total_before:  # nothing to compare with
        return []
    grown = []
    for term, count in now.items():
        if count < min_count:
            continue
        share = count / total_now
        was = before.get(term, 0) / total_before if total_before else 0.0
        if share > was:
            grown.append((term, share, was))
    grown.sort(key=lambda t: (-(t[1] - t[2]), t[0]))
    return grown[:top]


def _pairs_first(counts: dict[str, int]) -> dict[str, int]:
    """Term counts without the single words that a pair of words holding them accounts for
    more than half the uses of ("bug report" says "report")."""
    pairs = [(p.split(" "), c) for p, c in counts.items() if " " in p]
    return {
        t: c
        for t, c in counts.items()
        if " " in t or not any(t in words and 2 * pc > c for words, pc in pairs)
    }
