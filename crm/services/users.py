"""Users and their roles."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, col, select

from crm.models import Role, User
from crm.services.actor import Actor
from crm.services.audit import record_event, snapshot
from crm.services.errors import CRMError, NotFound, PermissionDenied
from crm.services.normalise import (
    clean_text,
    is_email,
    normalise_email,
    normalise_slack_id,
    storable_id,
)


def _role(value: Role | str) -> Role:
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        raise CRMError(
            f"{value!r} is not a role.", hint="Roles: admin, manager, rep, viewer."
        ) from None


def _timezone(value: str | None) -> str:
    tz = (value or "UTC").strip()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise CRMError(
            f"{tz!r} is not a time zone.", hint="Use an IANA name such as Europe/Paris."
        ) from None
    return tz


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if storable_id(user_id) else None
    if user is None:
        raise NotFound(f"There is no user #{user_id}.")
    return user


def find_user(session: Session, ref: str) -> User:
    """A user by #id, email, Slack id (or <@U123> mention) or exact name."""
    text = ref.strip()
    if text.lstrip("#").isdigit():
        return get_user(session, int(text.lstrip("#")))
    if is_email(text):
        user = session.exec(select(User).where(User.email == normalise_email(text))).first()
    elif text.startswith("<@") or (text[:1] in "UW" and text[1:].isalnum() and text.isupper()):
        user = session.exec(
            select(User).where(User.slack_user_id == normalise_slack_id(text))
        ).first()
    else:
        users = list(session.exec(select(User).where(col(User.name).ilike(text.lstrip("@")))))
        if len(users) > 1:
            raise CRMError(
                f"{len(users)} users are called {text!r}.", hint="Use their email instead."
            )
        user = users[0] if users else None
    if user is None:
        raise NotFound(f"No user matches {ref!r}.", hint="Check the email, Slack id or name.")
    return user


def add_user(
    session: Session,
    *,
    name: str,
    actor: Actor,
    email: str | None = None,
    slack_user_id: str | None = None,
    role: Role | str = Role.rep,
    timezone: str | None = None,
) -> User:
    actor.require_admin("add users")
    user = User(
        name=clean_text(name, field="name", max_length=200, required=True) or "",
        email=normalise_email(email) if email else None,
        slack_user_id=normalise_slack_id(slack_user_id) if slack_user_id else None,
        role=_role(role),
        timezone=_timezone(timezone),
    )
    if user.email and session.exec(select(User).where(User.email == user.email)).first():
        raise CRMError(f"A user with email {user.email} exists already.")
    if (
        user.slack_user_id
        and session.exec(select(User).where(User.slack_user_id == user.slack_user_id)).first()
    ):
        raise CRMError(f"A user with Slack id {user.slack_user_id} exists already.")
    session.add(user)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="create",
        entity="user",
        entity_id=user.id,
        after=snapshot(user),
    )
    return user


def _change(session: Session, user: User, actor: Actor, action: str, **fields: object) -> User:
    """Set ``fields`` on ``user`` and audit the change as ``action``."""
    before = snapshot(user)
    for name, value in fields.items():
        setattr(user, name, value)
    session.add(user)
    session.flush()
    record_event(
        session,
        actor=actor,
        action=action,
        entity="user",
        entity_id=user.id,
        before=before,
        after=snapshot(user),
    )
    return user


def set_role(session: Session, *, user_id: int, role: Role | str, actor: Actor) -> User:
    actor.require_admin("change roles")
    return _change(session, get_user(session, user_id), actor, "set_role", role=_role(role))


def set_active(session: Session, *, user_id: int, active: bool, actor: Actor) -> User:
    """Deactivate a user (they can no longer act in the CRM, and get no digests) or reactivate one.

    Nothing they own or did is changed; an admin reassigns their customers and deals as needed.
    """
    actor.require_admin("deactivate or reactivate users")
    user = get_user(session, user_id)
    if not active and actor.user_id == user.id:
        raise CRMError(
            "You cannot deactivate yourself.", hint="Ask another admin to deactivate your account."
        )
    if user.active == active:
        return user
    return _change(session, user, actor, "activate" if active else "deactivate", active=active)


def ensure_slack_user(
    session: Session,
    *,
    slack_user_id: str,
    name: str,
    email: str | None,
    timezone: str | None,
    default_role: Role | str,
) -> User:
    """The user behind a Slack id, created on first sight (from users.info) with the default role."""
    slack_id = normalise_slack_id(slack_user_id)
    user = session.exec(select(User).where(User.slack_user_id == slack_id)).first()
    if user is not None:
        return user
    clean_email = normalise_email(email) if email and is_email(email) else None
    if clean_email:
        user = session.exec(select(User).where(User.email == clean_email)).first()
        if user is not None:  # known by email (e.g. added from the CLI): attach the Slack id
            before = snapshot(user)
            user.slack_user_id = slack_id
            session.add(user)
            session.flush()
            record_event(
                session,
                actor=Actor.system("slack"),
                action="link_slack",
                entity="user",
                entity_id=user.id,
                before=before,
                after=snapshot(user),
            )
            return user
    try:
        tz = _timezone(timezone)
    except CRMError:
        tz = "UTC"
    user = User(
        name=(name or slack_id)[:200],
        email=clean_email,
        slack_user_id=slack_id,
        role=_role(default_role),
        timezone=tz,
    )
    session.add(user)
    session.flush()
    record_event(
        session,
        actor=Actor.system("slack"),
        action="create",
        entity="user",
        entity_id=user.id,
        after=snapshot(user),
    )
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.id))))


def actor_for(user: User, via: str) -> Actor:
    """The actor for a CRM user; a deactivated user cannot act (reads included)."""
    if not user.active:
        raise PermissionDenied(
            f"The CRM account of {user.name} is deactivated.",
            hint="Ask an admin to reactivate it (`crmbot user activate`).",
        )
    return Actor(
        name=f"{via}:{user.slack_user_id or user.email or user.id} ({user.name})",
        role=Role(user.role),
        user_id=user.id,
    )
