"""``crmbot customer add|find|show|update|merge``: the customer records."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from bot.cli import common
from bot.cli.common import JsonOpt, LimitOpt
from bot.rendering import plural
from crm.models import CustomerCreate, CustomerUpdate
from crm.services import customers as customer_svc
from crm.services import deals as deal_svc
from crm.services import followups as followup_svc
from crm.services import insights
from crm.services import interactions as interaction_svc
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
        }
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
            help="field=value pairs: name, company, domain, status, owner, tags, email (adds an "
            "address), phone (replaces the number)."
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
            ):
                raise CRMError(
                    f"Cannot read {change!r}.",
                    hint="Use field=value with name, company, domain, status, owner, tags, "
                    "email or phone.",
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
        result = customer_svc.merge_customers(
            session, keep_id=kept.id, merge_id=gone.id, actor=actor
        )  # type: ignore[arg-type]
        data = _customer_dict(session, result)
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(f"Merged #{gone_id} into #{data['id']} {data['name']}.")


def register(app: typer.Typer) -> None:
    """Add ``crmbot customer ...`` to the root command."""
    app.add_typer(customer_app, name="customer")
