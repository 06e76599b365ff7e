"""``crmbot customer add|find|show|update|merge``: the customer records."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from bot.cli import common
from bot.cli.common import JsonOpt, LimitOpt
from bot.rendering import plural
from crm.analytics.duplicates import DEFAULT_MIN_SCORE, find_duplicates
from crm.models import CustomerCreate, CustomerUpdate
from crm.services import customers as customer_svc
from crm.services import deals as deal_svc
from crm.services import followups as followup_svc
from crm.services import insights
from crm.services import interactions as interaction_svc
from crm.services import merges as merge_svc
from crm.services import values as value_svc
from crm.services.errors import CRMError

customer_app = typer.Typer(no_args_is_help=True, help="Customers.")


def _customer_dict(session: Session, customer: Any) -> dict[str, Any]:
    data = common.plain(customer)
    data.pop("name_key", None)
    data["contacts"] = [
        {"kind": p.kind, "value": p.value}
        for p in customer_svc.contact_points(session, customer.id)
    ]
    return data


@customer_app.command("add")
def customer_add(
    ctx: typer.Context,
    name: str,
    email: Annotated[str | None, typer.Option(help="Their email address.")] = None,
    company: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    domain: Annotated[
        str | None, typer.Option(help="Company domain (taken from the email when not given).")
    ] = None,
    status: Annotated[str, typer.Option(help="lead, active or churned.")] = "lead",
    owner: Annotated[str | None, typer.Option(help="Owner (user email or Slack id).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag; repeat for more.")] = None,
    street: Annotated[str | None, typer.Option(help="Street and number.")] = None,
    city: Annotated[str | None, typer.Option()] = None,
    postcode: Annotated[str | None, typer.Option()] = None,
    country: Annotated[str | None, typer.Option()] = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a customer."""
    state = common.state(ctx)
    if status not in ("lead", "active", "churned"):
        raise CRMError(f"{status!r} is not a status.", hint="Use lead, active or churned.")
    with state.write() as (session, actor):
        customer = customer_svc.create_customer(
            session,
            actor=actor,
            customer_in=CustomerCreate(
                name=name,
                email=email,
                company=company,
                phone=phone,
                domain=domain,
                status=status,  # type: ignore[arg-type]
                owner_id=common.user_id(session, owner),
                tags=tag or [],
                street=street,
                city=city,
                postcode=postcode,
                country=country,
            ),
        )
        data = _customer_dict(session, customer)
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(f"Added customer #{data['id']} {data['name']}.")


@customer_app.command("find")
def customer_find(
    ctx: typer.Context, query: str, limit: LimitOpt = 10, json_out: JsonOpt = False
) -> None:
    """Find customers by email, domain, #id or (fuzzy) name."""
    state = common.state(ctx)
    with state.db.session() as session:
        # One more than shown, to know whether there are more.
        matches = customer_svc.find_customers(session, query, limit=limit + 1)
        more = len(matches) > limit
        matches = matches[:limit]
        rows = [
            {
                "id": m.customer.id,
                "name": m.customer.name,
                "company": m.customer.company,
                "domain": m.customer.domain,
                "status": m.customer.status,
                "score": round(m.score, 1),
                "matched_on": m.matched_on,
            }
            for m in matches
        ]
    if json_out:
        common.emit_json(rows)
        return
    if not rows:
        common.console.print(f"No customer matches {query!r}.")
        return
    common.table(
        f"Customers matching {query!r}",
        ["#", "name", "company", "domain", "status", "match"],
        [
            [
                r["id"],
                r["name"],
                r["company"],
                r["domain"],
                r["status"],
                f"{r['matched_on']} {r['score']:.0f}",
            ]
            for r in rows
        ],
    )
    if more:
        # A search ranks its matches and shows the best; it does not count the rest.
        best = plural(limit, "match", "matches")
        common.console.print(f"showing the best {best} (--limit N for more)")


@customer_app.command("list")
def customer_list(
    ctx: typer.Context,
    sort: Annotated[
        str, typer.Option("--sort", help="value: expected spend over the horizon, highest first.")
    ] = "value",
    limit: LimitOpt = 20,
    json_out: JsonOpt = False,
) -> None:
    """List customers by expected value from the latest analytics run."""
    if sort != "value":
        raise CRMError(f"{sort!r} is not a sort order.", hint="Use --sort value.")
    state = common.state(ctx)
    with state.db.session() as session:
        rows = [
            {
                "id": c.id,
                "name": c.name,
                "company": c.company,
                "expected_spend": v.expected_spend,
                "expected_purchases": v.expected_purchases,
                "p_alive": v.p_alive,
                "horizon_months": v.horizon_months,
            }
            for c, v in value_svc.most_valuable(session, limit=limit)
        ]
    if json_out:
        common.emit_json(rows)
        return
    if not rows:
        common.console.print("No customer has a value yet: run crmbot analytics refresh.")
        return
    common.table(
        f"Most valuable customers (expected {rows[0]['horizon_months']}-month spend)",
        ["#", "name", "company", "expected spend", "purchases", "still active"],
        [
            [
                r["id"],
                r["name"],
                r["company"],
                f"{r['expected_spend']:,.2f}",
                f"{r['expected_purchases']:.1f}",
                f"{r['p_alive']:.0%}",
            ]
            for r in rows
        ],
    )


@customer_app.command("show")
def customer_show(ctx: typer.Context, customer: str, json_out: JsonOpt = False) -> None:
    """Show a customer card: contacts, owner, open deals, recent interactions, next follow-up."""
    state = common.state(ctx)
    with state.db.session() as session:
        tz = state.viewer_zone(session)
        found = customer_svc.resolve_customer(session, customer)
        card = customer_svc.customer_card(session, found.id)  # type: ignore[arg-type]
        data = _customer_dict(session, card.customer)
        # Scripts get whole records, not the card's summaries.
        deals = [deal_svc.get_deal(session, d.id) for d in card.open_deals]
        follow_up = (
            followup_svc.get_follow_up(session, card.next_follow_up.id)
            if card.next_follow_up
            else None
        )
        data |= {
            "owner": card.owner.name if card.owner else None,
            "open_deals": common.plain(deals),
            # Scripts get the interactions whole, not the card's one-line previews.
            "recent_interactions": common.plain(
                interaction_svc.timeline(
                    session,
                    customer_id=card.customer.id,
                    limit=len(card.recent_interactions),  # type: ignore[arg-type]
                )
                if card.recent_interactions
                else []
            ),
            "next_follow_up": common.plain(follow_up),
            "next_products": insights.next_products(session, card.customer.id),  # type: ignore[arg-type]
            "talks_about": insights.talks_about(session, card.customer.id),  # type: ignore[arg-type]
        }
        worth = value_svc.latest_value(session, found.id)  # type: ignore[arg-type]
        data["value"] = (
            {
                "expected_spend": worth.expected_spend,
                "expected_purchases": worth.expected_purchases,
                "p_alive": worth.p_alive,
                "horizon_months": worth.horizon_months,
            }
            if worth
            else None
        )
    if json_out:
        common.emit_json(data)
        return
    c = card.customer
    common.console.print(
        f"#{c.id} {c.name}" + (f" — {c.company}" if c.company else ""), style="bold"
    )
    common.console.print(
        f"status: {c.status}   owner: {data['owner'] or '-'}   domain: {c.domain or '-'}   "
        f"tags: {', '.join(c.tags or []) or '-'}",
        highlight=False,
    )
    if address := customer_svc.format_address(c):
        common.console.print(f"address: {address}", highlight=False)
    if worth := data["value"]:
        common.console.print(
            f"expected {worth['horizon_months']}-month value: {worth['expected_spend']:,.2f} "
            f"({worth['expected_purchases']:.1f} purchases)   "
            f"still active: {worth['p_alive']:.0%}",
            highlight=False,
        )
    for point in card.contacts:
        common.console.print(f"  {point.kind}: {point.value}", highlight=False)
    if deals:
        common.table(
            "Open deals",
            ["#", "title", "stage", "amount", "close"],
            [
                [d.id, d.title, d.stage, f"{d.amount:,.2f} {d.currency}", d.expected_close_date]
                for d in deals
            ],
        )
    if card.recent_interactions:
        common.table(
            "Recent interactions",
            ["when", "channel", "direction", "subject"],
            [
                [
                    common.when(i.occurred_at, tz),
                    i.channel,
                    i.direction,
                    i.subject or i.preview[:60],
                ]
                for i in card.recent_interactions
            ],
        )
    if card.next_follow_up:
        f = card.next_follow_up
        common.console.print(
            f"Next follow-up #{f.id}: {common.when(f.due_at, tz)} {f.note}", highlight=False
        )
    rated: Any = card.extras.get("satisfaction")
    if rated is not None:
        before = f", {rated.previous}/5 before" if rated.previous is not None else ""
        common.console.print(
            f"Satisfaction: {rated.latest}/5 ({rated.trend}{before}), "
            f"{common.when(rated.answered_at, tz)}",
            highlight=False,
        )
    if data["talks_about"]:
        common.console.print(
            "Talks about: " + ", ".join(data["talks_about"]), highlight=False, markup=False
        )
    if data["next_products"]:
        common.console.print("Likely to buy next:", highlight=False)
        for line in data["next_products"]:
            common.console.print(f"  {line}", highlight=False, markup=False)


@customer_app.command("update")
def customer_update(
    ctx: typer.Context,
    customer: str,
    changes: Annotated[
        list[str],
        typer.Argument(
            help="field=value pairs: name, company, domain, status, owner, tags, street, city, "
            "postcode, country, email (adds an address), phone (replaces the number)."
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Change a customer's fields, e.g. `status=active owner=ana@ourco.com tags=vip,eu`."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        found = customer_svc.resolve_customer(session, customer)
        values: dict[str, Any] = {}
        for change in changes:
            key, sep, value = change.partition("=")
            key = key.strip().lower()
            if not sep or key not in (
                "name",
                "company",
                "domain",
                "status",
                "owner",
                "tags",
                "email",
                "phone",
                *customer_svc.ADDRESS_FIELDS,
            ):
                raise CRMError(
                    f"Cannot read {change!r}.",
                    hint="Use field=value with name, company, domain, status, owner, tags, "
                    "street, city, postcode, country, email or phone.",
                )
            if key == "phone":  # one number to call: the new one replaces the old
                customer_svc.replace_contact_point(
                    session, customer_id=found.id, kind=key, value=value, actor=actor
                )  # type: ignore[arg-type]
            elif key == "email":  # every address is kept: mail from each finds the customer
                customer_svc.add_contact_point(
                    session, customer_id=found.id, kind=key, value=value, actor=actor
                )  # type: ignore[arg-type]
            elif key == "owner":
                values["owner_id"] = common.user_id(session, value)
            elif key == "tags":
                values["tags"] = [t for t in value.split(",") if t.strip()]
            elif key == "status" and value not in ("lead", "active", "churned"):
                raise CRMError(f"{value!r} is not a status.", hint="Use lead, active or churned.")
            else:
                values[key] = value or None
        if values:
            customer_svc.update_customer(
                session, customer_id=found.id, changes=CustomerUpdate(**values), actor=actor
            )  # type: ignore[arg-type]
        data = _customer_dict(session, customer_svc.get_customer(session, found.id))  # type: ignore[arg-type]
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(f"Updated customer #{data['id']} {data['name']}.")


@customer_app.command("merge")
def customer_merge(ctx: typer.Context, keep: str, merge: str, json_out: JsonOpt = False) -> None:
    """Merge the second customer into the first (contacts, deals, interactions, follow-ups move)."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        kept = customer_svc.resolve_customer(session, keep)
        gone = customer_svc.resolve_customer(session, merge)
        gone_id = gone.id
        result, record = customer_svc.merge_with_record(
            session, keep_id=kept.id, merge_id=gone.id, actor=actor
        )  # type: ignore[arg-type]
        data = _customer_dict(session, result) | {"merge_id": record.id}
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(
            f"Merged #{gone_id} into #{data['id']} {data['name']} (merge #{record.id}; "
            f"`crmbot customer unmerge {record.id}` undoes it)."
        )


@customer_app.command("unmerge")
def customer_unmerge(ctx: typer.Context, merge_id: int, json_out: JsonOpt = False) -> None:
    """Undo a merge: both customers back, with what each had (merge id from `customer merge`)."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        merge = merge_svc.unmerge_customers(session, merge_id=merge_id, actor=actor)
        data = {
            "merge_id": merge.id,
            "kept": _customer_dict(session, customer_svc.get_customer(session, merge.kept_id)),
            "restored": _customer_dict(
                session, customer_svc.get_customer(session, merge.merged_id)
            ),
        }
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(
            f"Undid merge #{merge_id}: #{data['restored']['id']} {data['restored']['name']} is "
            f"back beside #{data['kept']['id']} {data['kept']['name']}."
        )


@customer_app.command("detach")
def customer_detach(
    ctx: typer.Context, customer: str, address: str, json_out: JsonOpt = False
) -> None:
    """Take an address back from a customer (a wrong attach): it becomes a lead of its own,
    with the mail it wrote and the replies sent to it (managers and admins)."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        found = customer_svc.resolve_customer(session, customer)
        done = customer_svc.detach_email(
            session,
            customer_id=found.id,
            email=address,
            actor=actor,  # type: ignore[arg-type]
        )
        lead = _customer_dict(session, customer_svc.get_customer(session, done.lead_id))
        data = {
            "customer_id": done.customer_id,
            "email": done.email,
            "lead": lead,
            "interactions": done.interactions,
        }
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(
            f"Detached {done.email} from #{done.customer_id}: it is lead #{lead['id']} "
            f"{lead['name']}, with {plural(len(done.interactions), 'interaction')}."
        )


@customer_app.command("duplicates")
def customer_duplicates(
    ctx: typer.Context,
    min_score: Annotated[
        float, typer.Option("--min-score", min=0, max=100, help="Lowest score shown (0-100).")
    ] = DEFAULT_MIN_SCORE,
    limit: LimitOpt = 50,
    json_out: JsonOpt = False,
) -> None:
    """List customers that look like duplicates, with a score and the reasons."""
    state = common.state(ctx)
    with state.db.session() as session:
        pairs = find_duplicates(session, min_score=min_score)
        shown = pairs[:limit]
        names = customer_svc.customer_names(
            session, {i for p in shown for i in (p.low_id, p.high_id)}
        )
    rows = [
        {
            "first": {"id": p.low_id, "name": names.get(p.low_id)},
            "second": {"id": p.high_id, "name": names.get(p.high_id)},
            "score": p.score,
            "reasons": list(p.reasons),
        }
        for p in shown
    ]
    if json_out:
        common.emit_json(rows)
        return
    if not rows:
        common.console.print(f"No likely duplicates (score {min_score:g} or more).")
        return
    common.table(
        f"Likely duplicates (score {min_score:g} or more)",
        ["score", "first", "second", "why"],
        [
            [
                f"{r['score']:.0f}",
                f"#{r['first']['id']} {r['first']['name']}",
                f"#{r['second']['id']} {r['second']['name']}",
                "; ".join(r["reasons"]),
            ]
            for r in rows
        ],
    )
    if len(pairs) > limit:
        common.console.print(f"showing {limit} of {len(pairs):,} pairs (--limit N for more)")


@customer_app.command("not-duplicate")
def customer_not_duplicate(
    ctx: typer.Context, first: str, second: str, json_out: JsonOpt = False
) -> None:
    """Say two customers are different people: they are never suggested as duplicates again."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        a = customer_svc.resolve_customer(session, first)
        b = customer_svc.resolve_customer(session, second)
        dismissal = merge_svc.dismiss_duplicate(session, first_id=a.id, second_id=b.id, actor=actor)  # type: ignore[arg-type]
        data = {"first": dismissal.low_id, "second": dismissal.high_id}
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(
            f"Noted: #{data['first']} and #{data['second']} are different customers."
        )


@customer_app.command("forget")
def customer_forget(
    ctx: typer.Context,
    customer: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (the request); kept in the audit.")],
    json_out: JsonOpt = False,
) -> None:
    """Erase a person's personal data everywhere (GDPR art. 17); deal amounts stay (admins)."""
    from crm.services import erasure

    state = common.state(ctx)
    with state.write() as (session, actor):
        found = erasure.resolve_exactly(session, customer)
        result = erasure.forget_customer(
            session,
            actor=actor,
            customer_id=found.id,  # type: ignore[arg-type]
            reason=reason,
            key=erasure.hashing_key(session, state.settings.hmac_key),
            remember_contacts=state.settings.forget_blocks_capture,
        )
    state.db.flush_deleted()
    data = common.plain(result)
    if json_out:
        common.emit_json(data)
        return
    removed = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in result.removed.items() if n)
    kept = ", ".join(f"{n} {k}" for k, n in result.kept.items() if n)
    common.console.print(
        f"Forgot customer #{result.customer_id} (record {result.customer}). "
        f"Removed: {removed or 'nothing else'}. "
        + (f"Kept without personal data: {kept}. " if kept else "")
        + f"Audit events scrubbed: {result.scrubbed_events}."
    )


@customer_app.command("export")
def customer_export(
    ctx: typer.Context,
    customer: str,
    fmt: Annotated[str, typer.Option("--format", help="json (the only format).")] = "json",
    json_out: JsonOpt = False,  # the output is JSON either way
) -> None:
    """Everything held about a person, as JSON (GDPR art. 15/20; managers and admins)."""
    from crm.services import erasure

    if fmt != "json":
        raise CRMError(f"{fmt!r} is not an export format.", hint="Use --format json.")
    state = common.state(ctx)
    with state.db.session() as session:
        actor = state.actor(session)
        found = customer_svc.resolve_customer(session, customer)
        data = erasure.export_customer(session, actor=actor, customer_id=found.id)  # type: ignore[arg-type]
    common.emit_json(data)


def register(app: typer.Typer) -> None:
    """Add ``crmbot customer ...`` to the root command."""
    app.add_typer(customer_app, name="customer")
