"""``crmbot analytics``: refresh segments, churn risk and follow-up findings; evaluate on real
data."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from bot.cli import common
from bot.rendering import plural
from crm.services.errors import CRMError

# These commands' own consoles, with Rich's defaults (markup on) as they have always printed;
# their tables go through the shared console.
console = Console()
err_console = Console(stderr=True)

analytics_app = typer.Typer(
    no_args_is_help=True, help="Segments, churn risk and follow-up findings."
)


class Dataset(StrEnum):
    cdnow = "cdnow"
    demo = "demo"
    febrl = "febrl"
    hillstrom = "hillstrom"
    completejourney = "completejourney"


class Task(StrEnum):
    churn = "churn"
    value = "value"
    satisfaction = "satisfaction"


def _progress(quiet: bool = False):  # type: ignore[no-untyped-def]
    started = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            err_console.print(
                f"[{time.perf_counter() - started:6.1f}s] {message}", highlight=False, markup=False
            )

    return say


def _parse_cutoff(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CRMError(
            f"{text!r} is not a date or time.", hint="Use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)."
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@analytics_app.command("refresh")
def refresh_command(
    ctx: typer.Context,
    cutoff: Annotated[
        str | None,
        typer.Option(
            "--cutoff", help="Back-test as of this date/time (UTC); stored as a 'backtest' run."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Recompute features, segments, churn scores and follow-up findings, and store them as a run."""  # noqa: E501 (a line break would show in the help)
    from crm.analytics.refresh import refresh

    state = common.state(ctx)
    when = _parse_cutoff(cutoff) if cutoff else None
    if when is not None and when > datetime.now(UTC):
        raise CRMError(
            "The cutoff is in the future.", hint="Leave --cutoff out to refresh as of now."
        )
    with state.db.session() as session:
        actor = state.actor(session)
    started = time.perf_counter()
    result = refresh(
        state.db,
        settings=state.settings,
        actor=actor,
        cutoff=when,
        kind="backtest" if when else "refresh",
        progress=_progress(),
    )
    elapsed = time.perf_counter() - started
    if json_out:
        common.emit_json(
            {
                **result.__dict__,
                "cutoff": result.cutoff.isoformat(),
                "wall_seconds": round(elapsed, 2),
            }
        )
        return
    console.print(
        f"Run #{result.run_id} as of {result.cutoff:%Y-%m-%d %H:%M} UTC: "
        f"{plural(result.customers, 'customer')} in {elapsed:.1f}s.",
        highlight=False,
    )
    churn_meta = result.meta.get("churn", {})
    if result.method == "cold_start":
        console.print(f"Churn risk: cold start — {result.meta.get('cold_start')}", highlight=False)
    else:
        console.print(
            f"Churn risk: {churn_meta.get('model', '').replace('_', ' ')} (validation AUC "
            f"{churn_meta.get('validation_auc', 0):.3f} on "
            f"{churn_meta.get('validation_cutoff', '')[:10]}), "
            f"model file {churn_meta.get('model_file')}.",
            highlight=False,
        )
    common.table(
        "Segments",
        ["segment", "customers"],
        [[k, f"{v:,}"] for k, v in sorted(result.segments.items(), key=lambda kv: -kv[1])],
    )
    common.table(
        "Churn risk",
        ["level", "customers"],
        [[k, f"{result.risk_levels.get(k, 0):,}"] for k in ("high", "medium", "low")],
    )
    common.table(
        "Findings", ["kind", "count"], [[k, f"{v:,}"] for k, v in sorted(result.findings.items())]
    )


@analytics_app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    dataset: Annotated[
        Dataset,
        typer.Option(
            "--dataset",
            help="cdnow (real purchases), demo (generated), febrl (duplicate customers), "
            "hillstrom (an e-mail test: uplift) or completejourney (next-product suggestions "
            "on grocery baskets).",
        ),
    ] = Dataset.cdnow,
    customers: Annotated[
        int, typer.Option(min=500, max=1_000_000, help="Demo customers (demo only).")
    ] = 20_000,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    task: Annotated[
        Task,
        typer.Option(
            "--task",
            help="churn (who comes back), value (holdout spend; cdnow only) or satisfaction "
            "(the churn model with and without survey ratings; demo only).",
        ),
    ] = Task.churn,
) -> None:
    """Compare the churn model with BG/NBD, Pareto/NBD, RFM logistic regression and a simple baseline."""  # noqa: E501 (a line break would show in the help)
    from crm.analytics.evaluate import HISTORY_WEEKS, OURS, evaluate_cdnow, evaluate_demo

    state = common.state(ctx)
    say = _progress(quiet=json_out)
    if task is Task.value:
        if dataset is not Dataset.cdnow:
            err_console.print("--task value needs --dataset cdnow.", highlight=False)
            raise typer.Exit(2)
        _evaluate_value(say, json_out)
        return
    if task is Task.satisfaction:
        if dataset is not Dataset.demo:
            err_console.print("--task satisfaction needs --dataset demo.", highlight=False)
            raise typer.Exit(2)
        _evaluate_satisfaction(state, customers, say, json_out)
        return
    if dataset is Dataset.febrl:
        _evaluate_febrl(say, json_out)
        return
    if dataset is Dataset.hillstrom:
        _evaluate_hillstrom(say, json_out)
        return
    if dataset is Dataset.completejourney:
        _evaluate_baskets(state, say, json_out)
        return
    if dataset is Dataset.cdnow:
        result = evaluate_cdnow(settings=state.settings, progress=say)
    else:
        result = evaluate_demo(settings=state.settings, customers=customers, progress=say)
    if json_out:
        common.emit_json(
            {
                "dataset": result.dataset,
                "customers": result.customers,
                "buyers_in_holdout": result.buyers_in_holdout,
                "rows": [r.__dict__ for r in result.rows],
                "stability_ari": result.stability_ari,
                "clusters": result.clusters,
                "beats_all": result.beats_all,
                "meets_bar": result.meets_bar,
                "gaps": {
                    metric: dict(zip(("method", "difference", "low", "high"), gap, strict=True))
                    for metric, gap in result.gaps.items()
                },
                "ceiling": result.ceiling.__dict__ if result.ceiling else None,
                "history_ceiling": (
                    result.history_ceiling.__dict__ if result.history_ceiling else None
                ),
                "meta": result.meta,
            }
        )
        return
    label = "buys in the holdout" if result.dataset == "cdnow" else "engages in the holdout"
    common.table(
        f"{result.dataset}: {plural(result.customers, 'customer')}, "
        f"{result.buyers_in_holdout:,} {label}",
        ["method", "AUC", "average precision", "top-10% precision", "note"],
        [
            [
                r.method,
                f"{r.auc:.4f}",
                f"{r.average_precision:.4f}",
                f"{r.top10_precision:.4f}",
                r.note,
            ]
            for r in result.rows
        ],
    )
    ari = "n/a" if result.stability_ari is None else f"{result.stability_ari:.3f}"
    console.print(
        f"Segment stability: k={result.clusters}, smallest adjusted Rand index over 5 seeds {ari}.",
        highlight=False,
    )
    record = (
        f"our features plus the whole purchase record (count and spend of each of the last "
        f"{HISTORY_WEEKS} weeks, totals before)"
    )
    for what, top in (("our features", result.ceiling), (record, result.history_ceiling)):
        if top is not None:
            console.print(
                f"Ceiling, not a method: {what} fitted on the holdout's own labels (5-fold "
                f"cross-validated, {top.method}): AUC {top.auc:.4f}, average precision "
                f"{top.average_precision:.4f}, top-10% precision {top.top10_precision:.4f}.",
                highlight=False,
            )
    names = {"auc": "AUC", "average_precision": "average precision"}
    for metric, (other, diff, low, high) in result.gaps.items():
        console.print(
            f"Ours minus the best other on {names[metric]} ({other}): {diff:+.4f}, "
            f"95% interval {low:+.4f} to {high:+.4f} (paired bootstrap over customers).",
            highlight=False,
        )
    console.print(
        f"{OURS} beats every other method on AUC and top-10% precision: "
        f"{'yes' if result.beats_all else 'no'}.",
        highlight=False,
    )
    console.print(
        f"{OURS} at least matches the best other method on AUC and on average precision: "
        f"{'yes' if result.meets_bar else 'no'}.",
        highlight=False,
    )
    console.print(
        f"our AUC: {result.ours.auc:.4f}, our average precision: "
        f"{result.ours.average_precision:.4f}",
        highlight=False,
    )


def _evaluate_satisfaction(state: Any, customers: int, say: Any, json_out: bool) -> None:
    from crm.analytics.evaluate import evaluate_satisfaction

    result = evaluate_satisfaction(settings=state.settings, customers=customers, progress=say)
    rows = [result.with_ratings, result.without_ratings]
    if json_out:
        common.emit_json(
            {
                "dataset": "demo",
                "task": "satisfaction",
                "customers": result.customers,
                "rated": result.rated,
                "rows": [r.__dict__ for r in rows],
                "auc_gap": list(result.auc_gap),
                "average_precision_gap": list(result.average_precision_gap),
                "helps": result.helps,
            }
        )
        return
    common.table(
        f"demo churn model: {plural(result.customers, 'customer')} scored, "
        f"{result.rated:,} with a survey rating before the cutoff",
        ["churn model", "AUC", "average precision", "top-10% precision"],
        [
            [r.method, f"{r.auc:.4f}", f"{r.average_precision:.4f}", f"{r.top10_precision:.4f}"]
            for r in rows
        ],
    )
    for label, (gap, low, high) in (
        ("AUC", result.auc_gap),
        ("average precision", result.average_precision_gap),
    ):
        console.print(
            f"{label}: with ratings minus without {gap:+.4f} (95% interval {low:+.4f} to "
            f"{high:+.4f})",
            highlight=False,
        )
    console.print(
        "The demo plants the link (customers on their way out rate lower, before they go "
        "quiet): this shows the model uses ratings where present, not that they help on real "
        "data.",
        highlight=False,
    )
    console.print(f"satisfaction helps: {'yes' if result.helps else 'no'}", highlight=False)


def _evaluate_value(say: Any, json_out: bool) -> None:
    from crm.analytics import evaluate_value as ev

    result = ev.evaluate_value(progress=say)
    if json_out:
        common.emit_json(
            {
                "dataset": "cdnow",
                "task": "value",
                "customers": result.customers,
                "buyers_in_holdout": result.buyers_in_holdout,
                "horizon_weeks": result.horizon_weeks,
                "rows": [{**r.__dict__, "total_error_percent": r.total_error} for r in result.rows],
                "goals": result.goals,
                "zero_mae": result.zero_mae,
                "equal_totals": [
                    {"total": label, "share": share, "ours_mae": o, "baseline_mae": b}
                    for label, share, o, b in result.equal_totals
                ],
                "lower_mae_at_equal_totals": result.lower_mae_at_equal_totals,
            }
        )
        return
    common.table(
        f"cdnow value: {plural(result.customers, 'customer')}, {result.buyers_in_holdout:,} "
        f"buy in the {result.horizon_weeks:.0f}-week holdout",
        [
            "method",
            "Spearman",
            "MAE per customer",
            "predicted total",
            "actual total",
            "total error",
            "top-10% share",
            "seconds",
        ],
        [
            [
                r.method,
                f"{r.spearman:.4f}",
                f"{r.mae:.2f}",
                f"{r.predicted_total:,.0f}",
                f"{r.actual_total:,.0f}",
                f"{r.total_error:+.2f}%",
                f"{r.top10_share:.4f}",
                f"{r.seconds:.1f}",
            ]
            for r in result.rows
        ],
    )
    for label, share, ours_mae, theirs_mae in result.equal_totals:
        console.print(
            f"Diagnostic, not a method: scaled to {share:.1%} of the actual total ({label}), "
            f"MAE ours {ours_mae:.2f}, BG/NBD x Gamma-Gamma {theirs_mae:.2f}.",
            highlight=False,
        )
    console.print(
        f"Diagnostic, not a method: predicting no spend for anyone, MAE {result.zero_mae:.2f}.",
        highlight=False,
    )
    console.print(
        "ours has the lower MAE at every equal total: "
        f"{'yes' if result.lower_mae_at_equal_totals else 'no'}",
        highlight=False,
    )
    goals = result.goals
    met = [name for name, ok in goals.items() if ok]
    missed = [name for name, ok in goals.items() if not ok]
    console.print(
        f"{ev.OURS} beats {ev.BGNBD_GG} on Spearman, MAE and top-10% share with total error "
        f"within {ev.TOTAL_ERROR_GOAL:.0f}%: {'yes' if all(goals.values()) else 'no'} "
        f"(met: {', '.join(met) or 'none'}; missed: {', '.join(missed) or 'none'}).",
        highlight=False,
    )
    console.print(
        f"our Spearman: {result.ours.spearman:.4f}, our top-10% share: "
        f"{result.ours.top10_share:.4f}",
        highlight=False,
    )


def _evaluate_febrl(say: Any, json_out: bool) -> None:
    from crm.analytics import evaluate_duplicates as ev

    result = ev.evaluate_febrl(progress=say)
    rows = [
        {
            "dataset": s.dataset,
            "method": s.method,
            "records": s.records,
            "true_pairs": s.true_pairs,
            "found": s.found,
            "precision": round(s.precision, 4),
            "recall": round(s.recall, 4),
            "f1": round(s.f1, 4),
            "seconds": round(s.seconds, 2),
        }
        for s in result.scores
    ]
    if json_out:
        common.emit_json(
            {
                "rows": rows,
                "columns": {ev.OURS: ev.OUR_COLUMNS, ev.BASELINE: ev.BASELINE_COLUMNS},
                "beats_baseline": result.beats_baseline,
                "meets_goal": result.meets_goal,
                "blocking_recall": result.blocking_recall,
            }
        )
        return
    common.table(
        "FEBRL duplicate customers: precision, recall and F1 against the true links",
        ["set", "method", "records", "true pairs", "found", "precision", "recall", "F1", "s"],
        [
            [
                r["dataset"],
                r["method"],
                f"{r['records']:,}",
                f"{r['true_pairs']:,}",
                f"{r['found']:,}",
                f"{r['precision']:.3f}",
                f"{r['recall']:.3f}",
                f"{r['f1']:.3f}",
                f"{r['seconds']:.1f}",
            ]
            for r in rows
        ],
    )
    console.print(f"Columns, {ev.OURS}: {ev.OUR_COLUMNS}.", highlight=False)
    console.print(f"Columns, {ev.BASELINE}: {ev.BASELINE_COLUMNS}.", highlight=False)
    console.print(
        "Neither side sees the date of birth or social security number (customers have neither).",
        highlight=False,
    )
    reach = ", ".join(f"{d} {r:.3f}" for d, r in result.blocking_recall.items())
    console.print(
        f"Share of true pairs our blocking compares at all (our recall ceiling): {reach}.",
        highlight=False,
    )
    f1 = ", ".join(f"{d} {result.pair(d)[0].f1:.3f}" for d in ev.SETS)
    console.print(
        f"{ev.OURS} F1 >= {ev.BASELINE} on every set: "
        f"{'yes' if result.beats_baseline else 'no'}; F1 >= {ev.GOAL_F1} on FEBRL 1-3: "
        f"{'yes' if result.meets_goal else 'no'} (ours: {f1}).",
        highlight=False,
    )


def _evaluate_hillstrom(say, json_out: bool) -> None:  # type: ignore[no-untyped-def]
    """The Hillstrom e-mail test: (a) its campaign report, (b) targeting on a held-out half."""
    from crm.analytics.uplift import OURS, TOP_SHARE, evaluate_hillstrom

    result = evaluate_hillstrom(progress=say)
    if json_out:
        common.emit_json(
            {
                "dataset": "hillstrom",
                "customers": result.customers,
                "arms": {o: [a.__dict__ for a in arms] for o, arms in result.arms.items()},
                "uplifts": {o: [u.__dict__ for u in ups] for o, ups in result.uplifts.items()},
                "campaign": (
                    {
                        "arms": [a.__dict__ for a in result.campaign.arms],
                        "uplifts": [u.__dict__ for u in result.campaign.uplifts],
                    }
                    if result.campaign
                    else None
                ),
                "targeting": [r.__dict__ for r in result.targeting],
                "beats_all": result.beats_all,
                "meta": result.meta,
            }
        )
        return
    if result.campaign is not None:
        report = result.campaign
        common.table(
            "(a) hillstrom loaded as a campaign, read by `campaign report` "
            "(a response: a purchase, the test's conversion; revenue: spend)",
            ["arm", "customers", "contacted", "responded", "rate", "spend/customer"],
            [
                [
                    a.arm if a.arm != "control" else "No E-Mail (control)",
                    f"{a.customers:,}",
                    f"{a.contacted:,}",
                    f"{a.responded:,}",
                    f"{a.response_rate:.2%}",
                    f"${a.revenue_per_customer:.2f}",
                ]
                for a in report.arms
            ],
        )
        for u in report.uplifts:
            console.print(
                f"{u.arm}: {u.sentence} Spend per customer {u.revenue:+.2f} "
                f"(95% CI {u.revenue_low:.2f} to {u.revenue_high:.2f}).",
                highlight=False,
            )
    for outcome, arms in result.arms.items():
        if outcome != "visit":
            continue  # conversion is the campaign report above
        common.table(
            f"hillstrom, response = {outcome} (a visit has no CRM record: the report's "
            "arithmetic on the file; control: No E-Mail)",
            ["arm", "customers", "contacted", "responded", "rate", "spend/customer"],
            [
                [
                    a.arm,
                    f"{a.customers:,}",
                    f"{a.contacted:,}",
                    f"{a.responded:,}",
                    f"{a.response_rate:.2%}",
                    f"${a.revenue_per_customer:.2f}",
                ]
                for a in arms
            ],
        )
        for u in result.uplifts[outcome]:
            console.print(
                f"{u.arm}: {u.sentence} Spend per customer {u.revenue:+.2f} "
                f"(95% CI {u.revenue_low:.2f} to {u.revenue_high:.2f}).",
                highlight=False,
            )
    meta = result.meta
    common.table(
        f"Targeting on a stratified held-out half ({meta['test']:,} customers; "
        f"e-mail vs none; models see the other {meta['train']:,})",
        ["outcome", "method", "Qini", f"uplift in top {TOP_SHARE:.0%}", "note"],
        [
            [r.outcome, r.method, f"{r.qini:.5f}", f"{r.top_uplift * 100:+.2f} pts", r.note]
            for r in result.targeting
        ],
    )
    for outcome in ("visit", "conversion"):
        low, high = meta[outcome]["qini_gap_ci"]
        console.print(
            f"{outcome}: Qini of ours minus {meta[outcome]['best_other']}, 95% bootstrap interval "
            f"{low:+.5f} to {high:+.5f}.",
            highlight=False,
        )
    console.print(
        f"{OURS} >= every baseline on Qini and top-{TOP_SHARE:.0%} uplift, for visit and "
        f"conversion: {'yes' if result.beats_all else 'no'}.",
        highlight=False,
    )
    console.print(f"our Qini for visit: {result.ours('visit').qini:.5f}", highlight=False)


@analytics_app.command("rules")
def rules_command(
    ctx: typer.Context,
    min_lift: Annotated[
        float | None,
        typer.Option("--min-lift", min=0, help="Show only rules with at least this lift."),
    ] = None,
    level: Annotated[str, typer.Option("--level", help="product or category.")] = "product",
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The strongest 'customers who bought A also buy B' rules over purchases."""
    from crm.analytics.products import Level, mine_store

    if level not in {v.value for v in Level}:
        raise CRMError(f"{level!r} is not a level.", hint="Use --level product or category.")
    state = common.state(ctx)
    with state.db.session() as session:
        rules, labels = mine_store(session, state.settings, level=Level(level))
    found = rules.rules(min_lift=min_lift or 0.0, limit=limit)
    if json_out:
        common.emit_json(
            [
                {
                    **r.__dict__,
                    "antecedent_name": labels.get(r.antecedent, r.antecedent),
                    "antecedent2_name": (
                        None if r.antecedent2 is None else labels.get(r.antecedent2, r.antecedent2)
                    ),
                    "consequent_name": labels.get(r.consequent, r.consequent),
                }
                for r in found
            ]
        )
        return
    if not found:
        console.print(
            f"No {level} rules over the thresholds among {plural(rules.baskets, 'customer')} "
            "with purchase lines.",
            highlight=False,
        )
        return
    common.table(
        f"{level.capitalize()} rules over {plural(rules.baskets, 'customer')} with purchase lines",
        ["bought", "also buy", "customers", "support", "confidence", "lift"],
        [
            [
                " and ".join(labels.get(a, a) for a in r.antecedents),
                labels.get(r.consequent, r.consequent),
                f"{r.count:,}",
                f"{r.support:.1%}",
                f"{r.confidence:.0%}",
                f"{r.lift:.1f}x",
            ]
            for r in found
        ],
    )


@analytics_app.command("topics")
def topics_command(
    ctx: typer.Context,
    segment: Annotated[
        str | None, typer.Option("--segment", help="Only this segment (its name).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Start of the period whose terms are counted (YYYY-MM-DD; default: 7 days ago).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """What each segment's customers talk about: its topics, the period's most used terms, and
    the terms rising against the period of the same length before."""
    from datetime import time as dtime
    from datetime import timedelta

    from crm.services import insights

    now = datetime.now(UTC)
    day = common.parse_date(since)
    start = datetime.combine(day, dtime(0), tzinfo=UTC) if day else now - timedelta(days=7)
    if start >= now:
        raise CRMError(f"{since!r} is not in the past.", hint="Give a day before today.")
    state = common.state(ctx)
    with state.db.session() as session:
        rows = insights.segment_topics(session, since=start, until=now, segment=segment)
    if segment is not None and not rows:
        raise CRMError(
            f"No topics for a segment named {segment!r}.",
            hint="See the names with crmbot analytics topics.",
        )
    if json_out:
        common.emit_json(
            [
                {
                    "segment": r.segment,
                    "topics": [
                        {"label": label, "share": share, "customers": n}
                        for label, share, n in r.topics
                    ],
                    "terms": [{"term": t, "count": c} for t, c in r.terms],
                    "rising": [{"term": t, "share": a, "before": b} for t, a, b in r.rising],
                    "found_at": r.found_at.isoformat() if r.found_at else None,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        console.print(
            "No topics yet: they appear once an analytics run has read interactions with text.",
            highlight=False,
        )
        return
    common.table(
        f"What customers talk about (terms since {start:%Y-%m-%d})",
        ["segment", "topics", "most said", "rising"],
        [
            [
                r.segment,
                "; ".join(f"{label} ({share:.0%})" for label, share, _n in r.topics) or "-",
                ", ".join(t for t, _c in r.terms[:5]) or "-",
                ", ".join(f"{t} ({a:.0%}, was {b:.0%})" for t, a, b in r.rising) or "-",
            ]
            for r in rows
        ],
    )


def _evaluate_baskets(state: Any, say: Any, json_out: bool) -> None:
    """Next-category suggestions on The Complete Journey: ours, popularity, mlxtend rules."""
    from crm.analytics.evaluate_baskets import KS, evaluate_completejourney
    from crm.analytics.products import thresholds

    result = evaluate_completejourney(thresholds=thresholds(state.settings), progress=say)
    if json_out:
        common.emit_json(
            {
                "dataset": "completejourney",
                "households": result.households,
                "evaluated": result.evaluated,
                "baskets": result.baskets,
                "categories": result.categories,
                "rows": [r.__dict__ for r in result.rows],
                "beats_all": result.beats_all,
            }
        )
        return
    common.table(
        f"completejourney: {result.households:,} households, {result.baskets:,} baskets, "
        f"{result.categories} categories; {result.evaluated:,} households whose last basket "
        "holds a category new to them",
        ["method", *[f"{m}@{k}" for k in KS for m in ("hit rate", "recall")], "seconds", "note"],
        [
            [
                r.method,
                *[f"{v:.4f}" for k in KS for v in (r.hit[k], r.recall[k])],
                f"{r.seconds:.2f}",
                r.note,
            ]
            for r in result.rows
        ],
    )
    ours = result.ours
    console.print(
        f"Mining plus scoring of the full set (ours): {ours.seconds:.2f} s (goal: 60 s).",
        highlight=False,
    )
    console.print(
        "ours >= every baseline on hit rate and recall at k = 5 and 10: "
        f"{'yes' if result.beats_all else 'no'}.",
        highlight=False,
    )
    console.print(f"our hit rate@5: {ours.hit[5]:.4f}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``crmbot analytics ...`` to the root command."""
    app.add_typer(analytics_app, name="analytics")
