"""What every listener shares: the store and settings, the acting user, and the preamble
(``start``) that answers Slack, finds who is acting and refuses them politely when they may not."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from crm.config import Settings
from crm.db import Database
from crm.models import User
from crm.services import users as user_svc
from crm.services.actor import Actor
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class BotContext:
    """Put into Bolt's context by a middleware; listeners open their own sessions from ``db``."""

    settings: Settings
    db: Database


def bot_context(context: dict[str, Any]) -> BotContext:
    return context["crm"]  # type: ignore[no-any-return]


def _profile(client: WebClient, slack_user_id: str) -> dict[str, Any]:
    """users.info as plain values; a failed lookup still lets the user act (as default role)."""
    try:
        user = client.users_info(user=slack_user_id)["user"] or {}
    except SlackApiError as exc:
        logger.warning("users.info for %s failed: %s", slack_user_id, exc.response.get("error"))
        user = {}
    profile = user.get("profile") or {}
    return {
        "name": profile.get("real_name")
        or user.get("real_name")
        or user.get("name")
        or slack_user_id,
        "email": profile.get("email"),
        "timezone": user.get("tz"),
    }


# Every Slack request starts with this read: built once.
_USER_BY_SLACK_ID = select(User).where(User.slack_user_id == sa.bindparam("slack_user_id"))


class _Recent(Generic[T]):
    """Values found lately, by Slack user id, each good for the age the reader accepts.

    Bounded: past 10,000 users it starts afresh rather than grow without end.
    """

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, T]] = {}

    def get(self, key: str, max_age: float) -> T | None:
        found = self._items.get(key)
        return found[1] if found and time.monotonic() - found[0] < max_age else None

    def put(self, key: str, value: T) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[key] = (time.monotonic(), value)

    def clear(self) -> None:
        self._items.clear()


# A read request (find, show, ...) may act as the user read up to this long ago, so that a rep
# clicking through cards costs no user lookup per click; a role or time zone change reaches reads
# within this time. A change always reads its user afresh: permissions are checked on the row as
# it is now.
READER_TTL_SECONDS = 30.0
_READERS: _Recent[User] = _Recent()


def acting_user(
    bot: BotContext, client: WebClient, slack_user_id: str, *, session: Session | None = None
) -> tuple[User, Actor]:
    """The CRM user behind a Slack user (created from users.info when met for the first time).

    ``session``: given by read requests only, a read session of the caller's to look in; the
    user may then come from the last READER_TTL_SECONDS. Without it the user is read afresh.
    """
    if session is not None:
        known = _READERS.get(slack_user_id, READER_TTL_SECONDS)
        if known is not None:
            return known, user_svc.actor_for(known, "slack")
        user = session.exec(_USER_BY_SLACK_ID, params={"slack_user_id": slack_user_id}).first()
    else:
        with bot.db.lookup() as own:
            user = own.exec(_USER_BY_SLACK_ID, params={"slack_user_id": slack_user_id}).first()
    if user is None:
        profile = _profile(client, slack_user_id)
        try:
            with bot.db.transaction() as session:
                user = user_svc.ensure_slack_user(
                    session,
                    slack_user_id=slack_user_id,
                    name=profile["name"],
                    email=profile["email"],
                    timezone=profile["timezone"],
                    default_role=bot.settings.default_role,
                )
        except IntegrityError:
            # A second request from the same new user created them first: use that row.
            with bot.db.lookup() as own:
                user = own.exec(_USER_BY_SLACK_ID, params={"slack_user_id": slack_user_id}).one()
    _READERS.put(slack_user_id, user)
    return user, user_svc.actor_for(user, "slack")


def forget_readers() -> None:
    _READERS.clear()


@dataclass(frozen=True)
class Caller:
    """Who acts through a Slack request, as the CRM knows them, with the CRM's handles."""

    bot: BotContext
    slack_user_id: str
    user: User
    actor: Actor

    @property
    def tz(self) -> str:
        """Their own time zone, else the team's."""
        return self.user.timezone or self.bot.settings.timezone


def start(
    context: dict[str, Any],
    client: WebClient,
    slack_user_id: str,
    *,
    refuse: Callable[[CRMError], None],
    ack: Ack | None = None,
    writes: bool = False,
    session: Session | None = None,
) -> Caller | None:
    """The preamble every listener shares, in this order:

    1. ``ack()``, when given, comes first: Slack waits 3 seconds for it, whatever follows.
    2. The CRM's handles, from the request's context.
    3. The acting user (see ``acting_user``; ``session`` as there), who must be active, and
       allowed to change data when the listener ``writes``.

    A user who may not act is told why by ``refuse``, each surface its own way (a reply, the
    form, the Home tab), and None comes back: the listener has nothing more to do.
    """
    if ack is not None:
        ack()
    bot = bot_context(context)
    try:
        user, actor = acting_user(bot, client, slack_user_id, session=session)
        if writes:
            actor.require_write()
    except CRMError as err:
        refuse(err)
        return None
    return Caller(bot, slack_user_id, user, actor)


def write(bot: BotContext, fn: Callable[[Session], T]) -> T:
    """One unit of work: everything ``fn`` changes commits together, or nothing does."""
    with bot.db.transaction() as session:
        return fn(session)


def read(bot: BotContext, fn: Callable[[Session], T]) -> T:
    with bot.db.lookup() as session:
        return fn(session)


@dataclass(frozen=True)
class Author:
    email: str | None
    name: str | None
    external: bool


_AUTHORS: _Recent[Author] = _Recent()
_AUTHOR_TTL_SECONDS = 600.0


def author_facts(client: WebClient, slack_user_id: str | None, home_team: str | None) -> Author:
    """Who wrote a message: email, name, and whether they are from another organisation.

    Cached for a few minutes: a busy linked channel must not cost one users.info per message.
    """
    if not slack_user_id:
        return Author(None, None, False)
    cached = _AUTHORS.get(slack_user_id, _AUTHOR_TTL_SECONDS)
    if cached is not None:
        return cached
    try:
        user = client.users_info(user=slack_user_id)["user"] or {}
    except SlackApiError as exc:
        logger.warning("users.info for %s failed: %s", slack_user_id, exc.response.get("error"))
        return Author(None, None, False)
    profile = user.get("profile") or {}
    team = user.get("team_id") or profile.get("team")
    external = bool(user.get("is_stranger")) or bool(home_team and team and team != home_team)
    author = Author(
        email=profile.get("email"),
        name=profile.get("real_name") or user.get("real_name") or user.get("name"),
        external=external,
    )
    _AUTHORS.put(slack_user_id, author)
    return author


def forget_authors() -> None:
    _AUTHORS.clear()


def direct_message(client: WebClient, slack_user_id: str, reply: dict[str, Any]) -> None:
    """Post to the app's DM with a user; the change it reports is saved whatever happens here."""
    try:
        channel = client.conversations_open(users=slack_user_id)["channel"]["id"]
        client.chat_postMessage(channel=channel, text=reply["text"], blocks=reply.get("blocks"))
    except SlackApiError as exc:
        logger.warning("message to %s failed: %s", slack_user_id, exc.response.get("error"))
