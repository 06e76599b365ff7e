"""``crmbot user add|role|deactivate|activate|list``: users and their roles."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import typer

from bot.cli import common
from bot.cli.common import JsonOpt
from crm.services import users as user_svc

user_app = typer.Typer(no_args_is_help=True, help="Users and roles.")


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: str,
    email: Annotated[str | None, typer.Option()] = None,
    slack_id: Annotated[str | None, typer.Option("--slack-id")] = None,
    role: Annotated[str, typer.Option(help="admin, manager, rep or viewer.")] = "rep",
    timezone: Annotated[str | None, typer.Option(help="IANA zone, e.g. Europe/Paris.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a user."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        user = user_svc.add_user(
            session,
            name=name,
            email=email,
            slack_user_id=slack_id,
            role=role,
            timezone=timezone or state.settings.timezone,
            actor=actor,
        )
        data = common.plain(user)
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(f"Added user #{data['id']} {data['name']} ({data['role']}).")


def _change_user(
    ctx: typer.Context,
    ref: str,
    json_out: bool,
    change: Callable[..., Any],
    says: Callable[[dict[str, Any]], str],
) -> None:
    """Apply one user-service change to the user ``ref`` names, then print it."""
    state = common.state(ctx)
    with state.write() as (session, actor):
        found = user_svc.find_user(session, ref)
        data = common.plain(change(session, user_id=found.id, actor=actor))
    if json_out:
        common.emit_json(data)
    else:
        common.console.print(says(data))


@user_app.command("role")
def user_role(ctx: typer.Context, user: str, role: str, json_out: JsonOpt = False) -> None:
    """Change a user's role."""
    change = functools.partial(user_svc.set_role, role=role)
    _change_user(ctx, user, json_out, change, lambda d: f"{d['name']} is now {d['role']}.")


def _set_active(ctx: typer.Context, user: str, active: bool, json_out: bool) -> None:
    change = functools.partial(user_svc.set_active, active=active)
    state = "active" if active else "deactivated"
    _change_user(ctx, user, json_out, change, lambda d: f"{d['name']} is now {state}.")


@user_app.command("deactivate")
def user_deactivate(ctx: typer.Context, user: str, json_out: JsonOpt = False) -> None:
    """Stop a user acting in the CRM (Slack and --as) and getting digests; their records stay."""
    _set_active(ctx, user, False, json_out)


@user_app.command("activate")
def user_activate(ctx: typer.Context, user: str, json_out: JsonOpt = False) -> None:
    """Let a deactivated user act in the CRM again."""
    _set_active(ctx, user, True, json_out)


@user_app.command("list")
def user_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List users."""
    state = common.state(ctx)
    with state.db.session() as session:
        users = user_svc.list_users(session)
    if json_out:
        common.emit_json(users)
        return
    common.table(
        "Users",
        ["#", "name", "email", "slack", "role", "timezone", "active"],
        [
            [
                u.id,
                u.name,
                u.email,
                u.slack_user_id,
                u.role,
                u.timezone,
                "yes" if u.active else "no",
            ]
            for u in users
        ],
    )


def register(app: typer.Typer) -> None:
    """Add ``crmbot user ...`` to the root command."""
    app.add_typer(user_app, name="user")
