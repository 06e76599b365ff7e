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
    completejourney = "completejourney"


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
            help="cdnow (real purchases), demo (generated), or completejourney (next-product "
            "suggestions on grocery baskets).",
        ),
    ] = Dataset.cdnow,
    customers: Annotated[
        int, typer.Option(min=500, max=1_000_000, help="Demo customers (demo only).")
    ] = 20_000,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Compare the churn model with BG/NBD, Pareto/NBD, RFM logistic regression and a simple baseline."""  # noqa: E501 (a line break would show in the help)
    from crm.analytics.evaluate import HISTORY_WEEKS, OURS, evaluate_cdnow, evaluate_demo

    state = common.state(ctx)
    say = _progress(quiet=json_out)
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
        ["method", "AUC", "top-10% precision", "note"],
        [[r.method, f"{r.auc:.4f}", f"{r.top10_precision:.4f}", r.note] for r in result.rows],
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
                f"cross-validated, {top.method}): AUC {top.auc:.4f}, top-10% precision "
                f"{top.top10_precision:.4f}.",
                highlight=False,
            )
    console.print(
        f"{OURS} beats every other method on both measures: {'yes' if result.beats_all else 'no'}.",
        highlight=False,
    )
    console.print(f"our AUC: {result.ours.auc:.4f}", highlight=False)


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
                labels.get(r.antecedent, r.antecedent),
                labels.get(r.consequent, r.consequent),
                f"{r.count:,}",
                f"{r.support:.1%}",
                f"{r.confidence:.0%}",
                f"{r.lift:.1f}x",
            ]
            for r in found
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
