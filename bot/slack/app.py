"""The Slack app: a Bolt ``App`` wired to the CRM. The entry point only wires things up."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.handlers import actions, commands, events, home, options, shortcuts, views
from bot.handlers.common import BotContext
from bot.slack.blocks.base import note
from bot.slack.respond import PooledRespond
from crm.config import Settings, reveal
from crm.db import Database
from crm.services.dates import parse_when
from crm.services.search import warm_name_index

logger = logging.getLogger(__name__)

# In a request's context, put there by our HTTP server (bot.slack.runtime): "send Slack the
# answer now". Listeners then run on in the request's thread after ack().
ANSWER_NOW = "answer_now"


class AnswerOnAck(Ack):
    """``ack()`` that also sends Slack its HTTP answer at once.

    With ``process_before_response`` the listener runs in the request's own thread; answering on
    ``ack()`` keeps Slack's 3 seconds for the acknowledgement alone while the listener goes on
    (reads, ``respond()``) in the same thread: no hand-over to another thread, no waiting.
    """

    def __init__(self, send: Callable[[BoltResponse], None]) -> None:
        super().__init__()
        self._send = send

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = super().__call__(*args, **kwargs)
        try:
            self._send(response)
        except OSError as exc:
            # Slack hung up first (it gives up after 3 s): the request is still carried out.
            logger.warning("Slack closed the connection before its answer: %s", exc)
        return response


class ServerErrorRetryHandler(RetryHandler):
    """Retries Slack's 5xx answers (a brief outage) with the SDK's backoff."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code >= 500


def retry_handlers(max_retries: int = 3) -> list[RetryHandler]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=max_retries),
        RateLimitErrorRetryHandler(max_retry_count=max_retries),
        ServerErrorRetryHandler(max_retry_count=max_retries),
    ]


def make_client(settings: Settings, token: str | None = None) -> WebClient:
    kwargs: dict[str, Any] = {
        "token": token or reveal(settings.slack_bot_token),
        "retry_handlers": retry_handlers(),
    }
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    return WebClient(**kwargs)


def register_listeners(app: App) -> None:
    for module in (commands, actions, views, shortcuts, events, home, options):
        module.register(app)


def handle_error(
    error: Exception, body: dict[str, Any], logger: logging.Logger, respond: Any = None
) -> BoltResponse | None:
    """The one place unexpected failures land: logged with the traceback, the user told briefly."""
    logger.exception("Slack listener failed: %s", error, exc_info=error)
    if respond is not None and (body.get("response_url") or body.get("response_urls")):
        try:
            respond(**note(":x: Something went wrong on our side; it is logged. Please try again."))
        except Exception:  # the user notice is best effort; the failure is logged above
            logger.warning("could not tell the user about the failure")
    return None


def warm_up_date_parsing(tz: str) -> None:
    """dateparser loads its English data and compiles its patterns on first use (a fraction of a
    second): pay that at start-up, not inside Slack's 3 seconds."""
    parse_when("tomorrow 9am", tz=tz)


def warm_up_search(db: Database) -> None:
    """Load the fuzzy-name index (about a second for 100k customers) before users search."""
    try:
        with db.session() as session:
            warm_name_index(session)
    except Exception:  # e.g. the database is not up yet: the first search loads it instead
        logger.warning("could not load the customer name index at start-up", exc_info=True)


def create_app(
    settings: Settings,
    db: Database,
    *,
    client: WebClient | None = None,
    process_before_response: bool = False,
    listener_threads: int = 32,
) -> App:
    """A Bolt app for the CRM. ``settings`` must hold the bot token and signing secret.

    ``process_before_response``: listeners run in the request's thread; served by our HTTP
    server, Slack's answer still goes out at ``ack()`` (see ``AnswerOnAck``). Without it (Socket
    Mode), listeners run in ``listener_threads`` after Bolt has acknowledged.
    """
    if not settings.slack_signing_secret:
        raise ValueError("SLACK_SIGNING_SECRET is needed to verify Slack's requests")
    app = App(
        client=client or make_client(settings),
        signing_secret=reveal(settings.slack_signing_secret),
        process_before_response=process_before_response,
        # Bolt's default pool has 5 threads; the HTTP answer waits for a free one to run ack(),
        # so a burst of requests would queue for Slack's 3 seconds. Listeners mostly wait on
        # the database and Slack, so more threads than cores is right.
        listener_executor=ThreadPoolExecutor(
            max_workers=listener_threads, thread_name_prefix="slack-listener"
        ),
        # Checked at start-up by the runtime's auth.test; no network call while building the app.
        token_verification_enabled=False,
    )
    crm = BotContext(settings=settings, db=db)

    def attach_crm(context: BoltContext, body: dict[str, Any], next: Any) -> None:  # noqa: A002
        # Only the handles go into the context; each listener opens its own session.
        context["crm"] = crm
        answer_now = context.get(ANSWER_NOW)
        if answer_now is not None and process_before_response:
            if body.get("type") == "event_callback":
                answer_now(BoltResponse(status=200, body=""))  # events need no ack() of ours
            else:
                context["ack"] = AnswerOnAck(answer_now)
        if context.response_url:
            context["respond"] = PooledRespond(
                response_url=context.response_url,
                proxy=context.client.proxy if context.client else None,
                ssl=context.client.ssl if context.client else None,
            )
        next()

    warm_up_date_parsing(settings.timezone)
    warm_up_search(db)
    app.use(attach_crm)
    app.error(handle_error)
    register_listeners(app)
    return app
