"""Running the Slack app: an HTTP server (``/slack/events``, ``GET /healthz``) or Socket Mode.

HTTP mode is stateless, so many replicas can sit behind one load balancer. The server is
the standard library's threading HTTP server: one thread per connection is plenty for
Slack's request rates, and it needs no extra dependency.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from pydantic import SecretStr
from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.runtime import Component, Disabled
from bot.slack import payloads
from bot.slack.app import ANSWER_NOW, create_app
from crm import crypto
from crm.config import Settings, reveal
from crm.db import Database
from crm.models import utcnow
from crm.services import replays

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
UNSUBSCRIBE_PATH = "/digests/unsubscribe"
CAMPAIGN_OPT_OUT_PATH = "/campaigns/unsubscribe"  # the path bot.campaigns puts in its links
CSAT_PATH = "/csat"  # the path of bot.surveys' rating links
MAX_BODY_BYTES = 1_000_000  # Slack's payloads are far smaller; refuse anything absurd
PRUNE_SECONDS = 60.0  # how often a server drops the requests too old to come again


DEFAULT_SLOTS = Settings.model_fields["http_listener_slots"].default
SLOT_WAIT_SECONDS = 1.0  # the longest a listener waits for a slot after Slack's answer


class FairSlots:
    """A counting semaphore that serves waiters first come, first served.

    ``threading.Semaphore`` lets a newly arrived thread take a freed slot ahead of the threads
    already waiting; under load some requests would then wait far longer than the rest.
    Here a freed slot is handed to the longest waiting thread.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one slot")
        self._free = slots
        self._lock = threading.Lock()
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a slot; with ``timeout``, give up after that many seconds (and return False)."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        # release() hands the slot over by releasing this lock: it is not given back first.
        if turn.acquire(timeout=-1 if timeout is None else timeout):
            return True
        with self._lock:
            if turn in self._waiting:
                self._waiting.remove(turn)
                return False
        turn.acquire()  # handed over just as the wait ran out: the slot is ours
        return True

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _SlackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(
        self, status: int, body: bytes | str = b"", headers: dict[str, Any] | None = None
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        sent_type = False
        for name, value in (headers or {}).items():
            if name.lower() in ("content-length", "connection"):
                continue
            sent_type = sent_type or name.lower() == "content-type"
            for item in value if isinstance(value, list) else [value]:
                self.send_header(name, str(item))
        if not sent_type:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


    def _send_page(
        self, status: int, body: str, *, title: str = "crmbot", headers: dict[str, Any] | None = None
    ) -> None:
        """A small HTML page (the link pages: unsubscribe, survey, open a customer)."""
        page = (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body style='font-family:sans-serif'>{body}</body></html>"
        )
        self._send(status, page, {"Content-Type": "text/html; charset=utf-8", **(headers or {})})
    def _unsubscribe(self, *, confirm: bool, token: str) -> None:
        """One-click unsubscribe from a digest email (RFC 8058). GET only shows a button, so mail
        scanners that open links do not unsubscribe anyone; POST does it."""
        from html import escape

        from bot.digests import TITLES
        from crm.models import User
        from crm.services import digest_runs
        from crm.services.errors import CRMError
        from crm.services.users import actor_for

        settings = self.server.settings
        if settings is None or not settings.secret_key:
            self._send(HTTPStatus.NOT_FOUND, "not found\n")
            return
        try:
            user_id, kind, channel = digest_runs.read_unsubscribe_token(reveal(settings.secret_key), token)
            if not confirm:
                body = (
                    f"<p>Stop the {escape(TITLES[kind].lower())} digest by {escape(channel)}?</p>"
                    f"<form method='post'><input type='hidden' name='t' value='{escape(token)}'>"
                    "<button type='submit'>Unsubscribe</button></form>"
                )
                self._send_page(HTTPStatus.OK, body)
                return
            with self.server.db.transaction() as session:
                user = session.get(User, user_id)
                if user is None:
                    raise CRMError("This unsubscribe link is not valid.")
                digest_runs.set_subscription(
                    session,
                    user=user,
                    kind=kind,
                    channel=channel,
                    subscribed=False,
                    actor=actor_for(user, "unsubscribe-link"),
                )
        except CRMError as exc:
            self._send_page(HTTPStatus.BAD_REQUEST, f"<p>{escape(str(exc))}</p>")
            return
        self._send_page(
            HTTPStatus.OK,
            f"<p>Done: you will no longer get the {escape(TITLES[kind].lower())} digest "
            f"by {escape(channel)}.</p>",
        )

    def _campaign_opt_out(self, *, confirm: bool, token: str) -> None:
        """One-click opt-out from campaign mail (RFC 8058): GET shows a button, POST opts out."""
        from html import escape

        from crm.services import campaigns
        from crm.services.actor import Actor
        from crm.services.errors import CRMError

        settings = self.server.settings
        if settings is None or not settings.secret_key:
            self._send(HTTPStatus.NOT_FOUND, "not found\n")
            return
        try:
            email = campaigns.read_opt_out_token(reveal(settings.secret_key) or "", token)
            if not confirm:
                body = (
                    f"<p>Stop campaign mail to {escape(email)}?</p>"
                    f"<form method='post'><input type='hidden' name='t' value='{escape(token)}'>"
                    "<button type='submit'>Unsubscribe</button></form>"
                )
                self._send_page(HTTPStatus.OK, body)
                return
            with self.server.db.transaction() as session:
                campaigns.opt_out(session, email=email, actor=Actor.system("unsubscribe-link"))
        except CRMError as exc:
            self._send_page(HTTPStatus.BAD_REQUEST, f"<p>{escape(str(exc))}</p>")
            return
        self._send_page(HTTPStatus.OK, f"<p>Done: {escape(email)} gets no more campaign mail.</p>")

    def _csat(self, *, confirm: bool, token: str, comment: str = "") -> None:
        """A survey's rating link. GET shows the rating with a comment box and records nothing
        (mail scanners open links); the page's button (POST) records it, once."""
        from html import escape

        from crm.services import surveys
        from crm.services.errors import CRMError

        settings = self.server.settings
        if settings is None or not settings.secret_key or not settings.csat_enabled:
            self._send(HTTPStatus.NOT_FOUND, "not found\n")
            return
        try:
            survey_id, rating = surveys.read_rating_token(reveal(settings.secret_key) or "", token)
            if not confirm:
                body = (
                    f"<p>Your rating: {rating} of 5.</p><form method='post'>"
                    f"<input type='hidden' name='t' value='{escape(token)}'>"
                    "<p><textarea name='comment' rows='4' cols='50' "
                    "placeholder='Anything to add? (optional)'></textarea></p>"
                    "<button type='submit'>Send</button></form>"
                )
                self._send_page(HTTPStatus.OK, body, title="Thank you")
                return
            with self.server.db.transaction() as session:
                surveys.record_rating(session, survey_id=survey_id, rating=rating, comment=comment)
        except CRMError as exc:
            self._send_page(HTTPStatus.BAD_REQUEST, f"<p>{escape(str(exc))}</p>", title="Thank you")
            return
        thanks = "<p>Thank you: your rating is recorded.</p>"
        self._send_page(HTTPStatus.OK, thanks, title="Thank you")

    def _open_customer(self, token: str) -> None:
        """A customer's link in a digest email: their card goes on top of the reader's Home tab
        in Slack, then the browser is sent on to that tab. Opening it changes no data, so a
        mail scanner following the link does no harm."""
        from html import escape

        from bot.digests import OPEN_CUSTOMER_PATH
        from bot.handlers.common import BotContext
        from bot.handlers.home import show_customer_on_home
        from bot.slack.links import app_home_link
        from crm.services import digest_runs
        from crm.services.errors import CRMError

        settings = self.server.settings
        if settings is None or not settings.secret_key:
            self._send(HTTPStatus.NOT_FOUND, "not found\n")
            return
        try:
            user_id, customer_id = digest_runs.read_customer_link_token(reveal(settings.secret_key), token)
        except CRMError as exc:
            self._send_page(HTTPStatus.BAD_REQUEST, f"<p>{escape(str(exc))}</p>")
            return
        client = self.server.app.client
        home = app_home_link(client)
        bot = BotContext(settings, self.server.db)
        try:
            shown = show_customer_on_home(bot, client, user_id=user_id, customer_id=customer_id)
        except SlackApiError as exc:
            logger.warning("%s: Slack refused the Home tab: %s", OPEN_CUSTOMER_PATH, exc)
            shown = False
        if not shown or home is None:
            self._send_page(
                HTTPStatus.OK, f"<p>Open Slack and use <code>/crm show #{customer_id}</code>.</p>"
            )
            return
        self._send_page(
            HTTPStatus.FOUND,
            f"<p><a href='{escape(home)}'>Open crmbot in Slack</a></p>",
            headers={"Location": home},
        )

    def do_GET(self) -> None:  # noqa: N802 (stdlib's name)
        from bot.digests import OPEN_CUSTOMER_PATH

        parts = urlsplit(self.path)
        if parts.path == UNSUBSCRIBE_PATH:
            self._unsubscribe(confirm=False, token=(parse_qs(parts.query).get("t") or [""])[0])
            return
        if parts.path == CAMPAIGN_OPT_OUT_PATH:
            token = (parse_qs(parts.query).get("t") or [""])[0]
            self._campaign_opt_out(confirm=False, token=token)
            return
        if parts.path == CSAT_PATH:
            self._csat(confirm=False, token=(parse_qs(parts.query).get("t") or [""])[0])
            return
        if parts.path == OPEN_CUSTOMER_PATH:
            self._open_customer((parse_qs(parts.query).get("t") or [""])[0])
            return
        if urlsplit(self.path).path != HEALTH_PATH:
            self._send(HTTPStatus.NOT_FOUND, "not found\n")
            return
        try:
            with self.server.db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            logger.warning("health check: database unreachable: %s", exc)
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "database unreachable\n")
            return
        self._send(HTTPStatus.OK, "ok\n")

    def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
        parts = urlsplit(self.path)
        if parts.path in (UNSUBSCRIBE_PATH, CAMPAIGN_OPT_OUT_PATH, CSAT_PATH):
            # The token comes in the query (mail clients' one-click POST) or in our form's body.
            length = (
                int(self.headers.get("Content-Length") or 0)
                if (self.headers.get("Content-Length") or "0").isdigit()
                else 0
            )
            form = (
                parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
                if 0 < length <= 10_000
                else {}
            )
            token = (parse_qs(parts.query).get("t") or form.get("t") or [""])[0]
            if parts.path == CSAT_PATH:
                comment = (form.get("comment") or [""])[0]
                self._csat(confirm=True, token=token, comment=comment)
            elif parts.path == CAMPAIGN_OPT_OUT_PATH:
                self._campaign_opt_out(confirm=True, token=token)
            else:
                self._unsubscribe(confirm=True, token=token)
            return
        if parts.path != EVENTS_PATH:
            self._send(HTTPStatus.NOT_FOUND, "not found\n")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(HTTPStatus.BAD_REQUEST, "bad content length\n")
            return
        raw = self.rfile.read(length)
        headers: dict[str, str | Sequence[str]] = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._send(HTTPStatus.BAD_REQUEST, "body is not UTF-8\n")
            return
        # Signature first: an unsigned request learns nothing, not even whether it parsed.
        if not self.server.verifier.is_valid_request(body, dict(self.headers.items())):
            self._send(HTTPStatus.UNAUTHORIZED, "invalid signature or stale timestamp\n")
            return
        try:
            request = BoltRequest(body=body, query=parts.query, headers=headers)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Bolt parses while building the request; a body of the wrong shape fails in there.
            logger.info("malformed Slack request: %s", exc)
            self._send(HTTPStatus.BAD_REQUEST, "malformed payload\n")
            return
        if not isinstance(request.body, dict) or not request.body:
            self._send(HTTPStatus.BAD_REQUEST, "malformed payload\n")
            return
        if (why := payloads.problem(request.body)) is not None:
            # Before Bolt, whose own middleware reads some of these fields.
            logger.info("malformed Slack payload: %s", why)
            self._send(HTTPStatus.BAD_REQUEST, f"malformed payload: {why}\n")
            return
        # A signature stays valid for minutes: the same request sent again is answered, once
        # more, but not carried out again. Type-ahead lookups change nothing and may repeat.
        if request.body.get("type") not in payloads.READ_ONLY and not self.server.first_sighting(
            str(self.headers.get("X-Slack-Signature"))
        ):
            logger.info("a signed request arrived again; not carried out twice")
            self._send(HTTPStatus.OK, "")
            return
        answered = slotted = False
        slots = self.server.listener_slots

        def answer_now(response: BoltResponse) -> None:
            nonlocal answered, slotted
            if not answered:
                answered = True
                try:
                    # The listener goes on in this thread; a next request must not wait behind it.
                    self.close_connection = True
                    self._send(response.status, response.body or b"", response.headers)
                finally:
                    # The rest of the work waits its turn, but not for long: a modal opened after
                    # ack() needs its trigger_id within Slack's 3 seconds, and under a lasting
                    # overload the process runs more at once rather than queueing without end.
                    slotted = slots.acquire(timeout=SLOT_WAIT_SECONDS)
                    if not slotted:
                        logger.info("no listener slot after %.1fs: going on", SLOT_WAIT_SECONDS)

        if self.server.answer_on_ack:
            request.context[ANSWER_NOW] = answer_now
        try:
            response = self.server.app.dispatch(request)
        except Exception:  # a request must get an answer, whatever failed inside Bolt
            logger.exception("dispatching a Slack request failed")
            response = BoltResponse(
                status=HTTPStatus.INTERNAL_SERVER_ERROR, body="internal error\n"
            )
        finally:
            if slotted:
                slots.release()
        if not answered:
            self._send(response.status, response.body or b"", response.headers)


class _SlackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        db: Database,
        signing_secret: str,
        *,
        listening: socket.socket | None = None,
        settings: Settings | None = None,
        answer_on_ack: bool = True,
        listener_slots: int | None = None,
    ) -> None:
        if listening is None:
            super().__init__(address, _Handler)
        else:
            # A worker process: it accepts from the parent's listening socket.
            super().__init__(address, _Handler, bind_and_activate=False)
            self.socket.close()
            self.socket = listening
            self.server_address = listening.getsockname()
        # Every process sharing the socket wakes for each new connection and only one gets it:
        # the others must not wait in accept() (nor miss a shutdown while waiting there).
        self.socket.setblocking(False)
        self.app = app
        self.db = db
        self.settings = settings  # for the digest unsubscribe page
        # Offer listeners to answer Slack at ack() (apps made with process_before_response).
        self.answer_on_ack = answer_on_ack
        # Listeners past their ack() that may run at once (see Settings.http_listener_slots).
        if listener_slots is None:
            listener_slots = settings.http_listener_slots if settings else DEFAULT_SLOTS
        self.listener_slots = FairSlots(listener_slots)
        self.verifier = SignatureVerifier(signing_secret)
        self._pruned_at = 0.0

    def first_sighting(self, signature: str) -> bool:
        """Whether this signed request is new (remembered in the store, so on every replica)."""
        now = utcnow()
        with self.db.quick_write() as session:
            if time.monotonic() - self._pruned_at > PRUNE_SECONDS:
                self._pruned_at = time.monotonic()
                replays.forget_before(session, now - replays.REMEMBER)
            return replays.first_sighting(session, key=signature, now=now)

    def get_request(self) -> tuple[socket.socket, Any]:
        # Raises BlockingIOError when another process took the connection; the server loop
        # treats that as "nothing to do" and goes back to waiting.
        conn, address = self.socket.accept()
        conn.setblocking(True)
        return conn, address


def _http_worker(settings: Settings, listening: socket.socket, conn: Connection) -> None:
    """A worker process: its own store connections and Bolt app, serving the shared socket.

    All processes accept from one listening socket, so a connection goes to whichever
    process is free to take it first: a busy process takes fewer.
    """
    logging.basicConfig(level=settings.log_level.upper())
    crypto.configure(settings)  # a spawned process: its own keyring for sealed columns
    db = Database(settings.database_url)
    server = _SlackHTTPServer(
        listening.getsockname()[:2],
        create_app(settings, db, process_before_response=True),
        db,
        reveal(settings.slack_signing_secret) or "",
        listening=listening,
        settings=settings,
    )
    thread = threading.Thread(target=server.serve_forever, name="slack-http", daemon=True)
    thread.start()
    conn.send("ready")
    with contextlib.suppress(EOFError):
        conn.recv()  # until the parent says stop, or goes away
    server.shutdown()
    server.server_close()
    db.dispose()


class SlackHTTPComponent:
    """Serves Slack's requests over HTTP until stopped."""

    name = "slack (HTTP)"

    def __init__(
        self,
        app: App,
        db: Database,
        *,
        host: str,
        port: int,
        signing_secret: str,
        workers: int = 1,
        settings: Settings | None = None,
        answer_on_ack: bool = True,
        listener_slots: int | None = None,
    ) -> None:
        if workers > 1 and settings is None:
            raise ValueError("extra HTTP workers rebuild the app from the settings; pass them")
        self.app = app
        self.server = _SlackHTTPServer(
            (host, port),
            app,
            db,
            signing_secret,
            settings=settings,
            answer_on_ack=answer_on_ack,
            listener_slots=listener_slots,
        )
        self._thread: threading.Thread | None = None
        self._extra = workers - 1
        self._settings = settings
        self._workers: list[tuple[BaseProcess, Connection]] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no forked copies of live DB connections
        for _ in range(self._extra):
            parent, child = ctx.Pipe()
            process: BaseProcess = ctx.Process(
                target=_http_worker, args=(self._settings, self.server.socket, child), daemon=True
            )
            process.start()
            self._workers.append((process, parent))
        for process, parent in self._workers:
            if not parent.poll(60) or parent.recv() != "ready":
                raise RuntimeError(f"Slack HTTP worker {process.pid} did not start")
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="slack-http", daemon=True
        )
        self._thread.start()
        processes = 1 + len(self._workers)
        logger.info(
            "Slack HTTP on %s%s (%d %s)",
            self.url,
            EVENTS_PATH,
            processes,
            "process" if processes == 1 else "processes",
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for process, parent in self._workers:
            with contextlib.suppress(OSError):
                parent.send("stop")
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        self._workers.clear()


class SlackSocketModeComponent:
    """Connects out to Slack over a websocket (no public URL needed)."""

    name = "slack (Socket Mode)"

    def __init__(self, app: App, *, app_token: str, api_url: str | None = None) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler
        from slack_sdk import WebClient

        web_client = WebClient(base_url=api_url.rstrip("/") + "/") if api_url else WebClient()
        self.handler = SocketModeHandler(app, app_token=app_token, web_client=web_client)

    def start(self) -> None:
        self.handler.connect()

    def stop(self) -> None:
        self.handler.close()


def slack_component(settings: Settings, db: Database) -> Component | Disabled:
    """The runtime's Slack component, or why Slack is off."""
    if not settings.slack_bot_token:
        return Disabled(
            "slack", "SLACK_BOT_TOKEN is not set; replies and digests go to the console/outbox"
        )
    if not settings.slack_app_token and not settings.slack_signing_secret:
        return Disabled(
            "slack", "SLACK_SIGNING_SECRET is not set, so Slack's HTTP requests cannot be verified"
        )
    # Socket Mode requests are not signed; the app still wants a secret for its HTTP verifier.
    if not settings.slack_signing_secret:
        settings = settings.model_copy(
            update={"slack_signing_secret": SecretStr("socket-mode-unsigned")}
        )
    # Over HTTP, listeners run in the request's thread and Slack is answered at ack().
    app = create_app(settings, db, process_before_response=not settings.slack_app_token)
    try:
        auth = app.client.auth_test()
        logger.info("Slack: connected as %s in %s", auth.get("user"), auth.get("team"))
    except SlackApiError as exc:
        return Disabled("slack", f"Slack rejected the bot token ({exc.response.get('error')})")
    except OSError as exc:
        return Disabled("slack", f"Slack's Web API is unreachable ({exc})")
    if settings.slack_app_token:
        return SlackSocketModeComponent(
            app, app_token=reveal(settings.slack_app_token), api_url=settings.slack_api_url
        )
    return SlackHTTPComponent(
        app,
        db,
        host=settings.http_host,
        port=settings.http_port,
        signing_secret=reveal(settings.slack_signing_secret) or "",
        workers=settings.http_workers,
        settings=settings,
    )
