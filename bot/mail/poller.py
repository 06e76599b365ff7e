"""The IMAP poller: UID-based sync that loses nothing and stores nothing twice.

One sync round, holding the mailbox lease:

1. ``SELECT`` the folder read-write; a new UIDVALIDITY means every UID changed, so the sync
   point goes back to 0 (mail already stored is recognised by Message-ID or content hash).
2. Finish the post-commit step (``\\Seen`` or move) for mail committed before a crash.
3. ``UID SEARCH last_uid+1:*`` and ``UID FETCH BODY.PEEK[]`` in batches (PEEK leaves
   ``\\Seen`` alone); parse; store the batch and advance the sync point in ONE transaction;
   only then mark the batch ``\\Seen`` or move it to the processed folder (never delete).

Between rounds the poller IDLEs (re-issued before the server's 30-minute limit) or polls,
renews its lease, and reconnects with exponential backoff after any drop; the next round
backfills everything since the last stored UID, however long the outage was.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.exc import SQLAlchemyError

from bot.mail.imap_auth import MailConfigError, connect, mailbox_name
from bot.mail.ingest import POOL_MIN_BATCH, MailProcessor
from bot.runtime import Disabled
from crm.config import Settings
from crm.db import Database
from crm.services import leases
from crm.services import mail_capture as capture
from crm.services.actor import Actor
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

SEEN = b"\\Seen"
DELETED = b"\\Deleted"
# Errors after which the connection is thrown away and the round retried later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    IMAPClientError,
    OSError,  # includes socket.timeout and ssl.SSLError
    EOFError,
    SQLAlchemyError,
)
# ... and those, plus configuration errors, that the run loop retries with backoff.
RETRIED_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, MailConfigError, CRMError)
_WAKE_SECONDS = 5.0  # how often a waiting poller checks for stop and renews its lease

AlertHook = Callable[[str], None]


class LeaseLost(Exception):
    """Another replica holds the mailbox lease now; stop syncing."""


@dataclass
class SyncReport:
    mailbox: str
    fetched: int = 0
    summary: capture.CaptureSummary = field(default_factory=capture.CaptureSummary)
    uid_validity: int | None = None
    last_uid: int = 0
    skipped_reason: str | None = None  # e.g. another replica holds the lease

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "fetched": self.fetched,
            **self.summary.as_dict(),
            "uid_validity": self.uid_validity,
            "last_uid": self.last_uid,
            "skipped_reason": self.skipped_reason,
        }


class MailboxPoller:
    """Syncs one IMAP folder into the CRM. ``run()`` loops; ``poll_once()`` does one round."""

    name = "mail poller"

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        connect_fn: Callable[[Settings], IMAPClient] = connect,
        on_alert: AlertHook | None = None,
        holder: str | None = None,
        after_commit: Callable[[Sequence[int]], None] | None = None,
        actor: Actor | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.mailbox = mailbox_name(settings)
        self.source = f"imap:{self.mailbox}"[:200]
        self.lease_name = f"mailbox:{self.mailbox}"[:300]
        self.holder = holder or leases.new_holder_id("poller:")
        # Who the audit trail names: the person running `crmbot mail poll`, else the poller.
        self.actor = actor or Actor.system(f"mail:{self.mailbox}"[:200])
        self.connect_fn = connect_fn
        self.on_alert = on_alert
        # A seam for tests and instrumentation: called after a batch commits, before flagging.
        self.after_commit = after_commit
        self.processor = MailProcessor(settings, db, source=self.source, actor=self.actor)
        self.client: IMAPClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_renewed_at = 0.0
        self._has_lease = False

    # ------------------------------------------------------------------ component

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="mail-poller", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_WAKE_SECONDS * 3 + self.settings.imap_timeout_seconds)
            self._thread = None

    # ------------------------------------------------------------------ lease

    def _lease_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.imap_lease_seconds)

    def acquire_lease(self) -> bool:
        with self.db.transaction() as session:
            got = leases.acquire_lease(
                session,
                name=self.lease_name,
                holder=self.holder,
                ttl=self._lease_ttl(),
                actor=self.actor,
            )
        self._has_lease = got
        if got:
            self._lease_renewed_at = time.monotonic()
        return got

    def renew_lease(self, force: bool = False) -> None:
        """Renew at a third of the lease time; raises LeaseLost when another replica took it."""
        if not force and time.monotonic() - self._lease_renewed_at < (
            self.settings.imap_lease_seconds / 3
        ):
            return
        if not self.acquire_lease():
            raise LeaseLost(f"the lease on {self.mailbox} is held by another replica")

    def release_lease(self) -> None:
        if not self._has_lease:
            return
        try:
            with self.db.transaction() as session:
                leases.release_lease(
                    session, name=self.lease_name, holder=self.holder, actor=self.actor
                )
        except SQLAlchemyError:
            logger.warning("could not release the lease on %s", self.mailbox, exc_info=True)
        self._has_lease = False

    # ------------------------------------------------------------------ connection

    def _connect(self) -> IMAPClient:
        if self.client is None:
            self.client = self.connect_fn(self.settings)
        return self.client

    def disconnect(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # the server may be gone already; the socket is dropped either way
            try:
                client.shutdown()
            except Exception:
                logger.debug("IMAP shutdown failed", exc_info=True)

    # ------------------------------------------------------------------ one round

    def sync(self) -> SyncReport:
        """One sync round on the open connection; the caller holds the lease."""
        client = self._connect()
        report = SyncReport(mailbox=self.mailbox)
        info = client.select_folder(self.settings.imap_folder, readonly=False)
        uid_validity = int(info[b"UIDVALIDITY"])
        report.uid_validity = uid_validity
        with self.db.transaction() as session:
            state = capture.begin_mailbox_sync(
                session, mailbox=self.mailbox, uid_validity=uid_validity, actor=self.actor
            )
            last_uid, flagged_uid = state.last_uid, state.flagged_uid
        if flagged_uid < last_uid:
            # Committed before a crash but never flagged: finish the job, store nothing again.
            unflagged = [
                u
                for u in client.search(["UID", f"{flagged_uid + 1}:{last_uid}"])
                if flagged_uid < u <= last_uid
            ]
            logger.info(
                "mailbox %s: finishing the post-commit step for %d messages",
                self.mailbox,
                len(unflagged),
            )
            self._after_store(client, unflagged, uid_validity, last_uid)
        uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        if len(uids) >= POOL_MIN_BATCH:
            self.processor.warm_up()  # the parser processes start while the first batch comes
        # Batch k is stored and flagged while batch k+1 is being parsed by the worker processes.
        pending: tuple[list[int], int, Callable[[], list[capture.IncomingMail]]] | None = None
        for chunk in self._batches(client, uids):
            if self._stop.is_set():
                break
            self.renew_lease()
            fetched = client.fetch(chunk, ["BODY.PEEK[]"])
            raws: list[bytes] = []
            origins: list[str] = []
            for uid in chunk:
                raw = (fetched.get(uid) or {}).get(b"BODY[]")
                if raw is None:
                    # Expunged by someone else since the SEARCH: nothing left to store.
                    logger.info("mailbox %s: UID %s vanished before the fetch", self.mailbox, uid)
                    continue
                raws.append(bytes(raw))
                origins.append(f"UID {uid}")
            parsing = self.processor.parse_async(raws, origins)
            if pending is not None:
                self._store_batch(client, report, uid_validity, *pending)
            pending = (chunk, len(raws), parsing)
        if pending is not None:
            self._store_batch(client, report, uid_validity, *pending)
        with self.db.transaction() as session:
            state = capture.record_sync_success(session, mailbox=self.mailbox)
            report.last_uid = state.last_uid
        if report.fetched:
            logger.info("mailbox %s: %s", self.mailbox, report.summary.as_dict())
        return report

    def _batches(self, client: IMAPClient, uids: list[int]) -> Iterator[list[int]]:
        """UIDs in batches of at most imap_batch_size messages and imap_batch_bytes bytes.

        Sizes come first (cheap), so a run of huge messages never has to fit in memory at
        once; a message larger than the byte limit is fetched on its own.
        """
        count_limit = self.settings.imap_batch_size
        byte_limit = self.settings.imap_batch_bytes
        for start in range(0, len(uids), 1000):
            part = uids[start : start + 1000]
            sizes = client.fetch(part, ["RFC822.SIZE"])
            batch: list[int] = []
            total = 0
            for uid in part:
                size = int((sizes.get(uid) or {}).get(b"RFC822.SIZE", 0))
                if batch and (len(batch) >= count_limit or total + size > byte_limit):
                    yield batch
                    batch, total = [], 0
                batch.append(uid)
                total += size
            if batch:
                yield batch

    def _store_batch(
        self,
        client: IMAPClient,
        report: SyncReport,
        uid_validity: int,
        chunk: list[int],
        fetched: int,
        parsing: Callable[[], list[capture.IncomingMail]],
    ) -> None:
        """Store a batch and advance the sync point in one transaction, then flag it."""
        top = chunk[-1]

        def advance(session: Any, results: list[capture.CaptureResult]) -> None:
            capture.advance_mailbox(
                session,
                mailbox=self.mailbox,
                uid_validity=uid_validity,
                last_uid=top,
                results=results,
            )

        results = self.processor.store(parsing(), in_same_transaction=advance)
        report.fetched += fetched
        report.summary.add(results)
        report.last_uid = top
        if self.after_commit is not None:
            self.after_commit(chunk)
        self._after_store(client, chunk, uid_validity, top)

    def _after_store(
        self, client: IMAPClient, uids: Sequence[int], uid_validity: int, top: int
    ) -> None:
        """Mark stored messages \\Seen or move them; never delete them."""
        if uids:
            if self.settings.imap_processed_action == "move":
                folder = self.settings.imap_processed_folder
                if not client.folder_exists(folder):
                    client.create_folder(folder)
                if client.has_capability("MOVE"):
                    client.move(list(uids), folder)
                else:
                    # RFC 6851's own fallback: copy, mark deleted, expunge just these UIDs.
                    # Without UIDPLUS no expunge: that would remove other people's deletions.
                    client.copy(list(uids), folder)
                    client.add_flags(list(uids), [SEEN, DELETED], silent=True)
                    if client.has_capability("UIDPLUS"):
                        client.uid_expunge(list(uids))
            else:
                client.add_flags(list(uids), [SEEN], silent=True)
        with self.db.transaction() as session:
            capture.mark_flagged(session, mailbox=self.mailbox, uid_validity=uid_validity, uid=top)

    def poll_once(self) -> SyncReport:
        """Connect, take the lease, sync, disconnect. For ``crmbot mail poll --once`` and cron."""
        if not self.acquire_lease():
            with self.db.session() as session:
                lease = leases.current_holder(session, self.lease_name)
            report = SyncReport(mailbox=self.mailbox)
            report.skipped_reason = (
                f"another replica ({lease.holder if lease else 'unknown'}) is polling this mailbox"
            )
            return report
        try:
            report = self.sync()
        except RETRIED_ERRORS as exc:
            self._record_failure(exc)
            raise
        finally:
            self.disconnect()
            self.release_lease()
            self.processor.close()
        return report

    # ------------------------------------------------------------------ loop

    def _record_failure(self, exc: BaseException) -> int:
        message = f"{type(exc).__name__}: {exc}"
        try:
            with self.db.transaction() as session:
                state = capture.record_sync_failure(session, mailbox=self.mailbox, error=message)
                failures = state.consecutive_failures
        except SQLAlchemyError:
            logger.warning("could not record the failure of %s", self.mailbox, exc_info=True)
            failures = 0
        level = (
            logging.ERROR
            if failures >= self.settings.imap_alert_after_failures
            else logging.WARNING
        )
        logger.log(
            level, "mailbox %s: sync failed (%d in a row): %s", self.mailbox, failures, message
        )
        if failures == self.settings.imap_alert_after_failures and self.on_alert is not None:
            try:
                self.on_alert(
                    f"Mail capture for {self.mailbox} has failed {failures} times in a row: "
                    f"{message}"
                )
            except Exception:  # an alert that cannot be sent must not stop the poller
                logger.exception("the mail alert hook failed")
        return failures

    def _backoff(self, failures: int) -> float:
        base = min(self.settings.imap_backoff_max_seconds, 2.0 ** min(failures, 16))
        return base * random.uniform(0.5, 1.0)

    def _wait_for_mail(self, client: IMAPClient) -> None:
        """IDLE until the server reports a change (or poll), renewing the lease meanwhile."""
        if b"IDLE" not in client.capabilities():
            deadline = time.monotonic() + self.settings.imap_poll_seconds
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._stop.wait(min(_WAKE_SECONDS, max(0.0, deadline - time.monotonic())))
                self.renew_lease()
            return
        client.idle()
        started = time.monotonic()
        # A message that lands between the last sync's search and the IDLE command may never be
        # announced; syncing again at least every poll interval bounds how late it can be.
        limit = min(self.settings.imap_idle_seconds, self.settings.imap_poll_seconds)
        try:
            while not self._stop.is_set():
                left = limit - (time.monotonic() - started)
                responses = client.idle_check(timeout=max(0.05, min(_WAKE_SECONDS, left)))
                if any(
                    isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT")
                    for r in responses
                ):
                    break
                if time.monotonic() - started >= limit:
                    break  # sync, then re-issue IDLE (also well before the server's 30-minute limit)
                self.renew_lease()
        finally:
            client.idle_done()

    def run(self) -> None:
        """Poll until stopped; never raises (errors are logged, counted and retried)."""
        failures = 0
        while not self._stop.is_set():
            try:
                # Each round re-takes the lease: it may have run out during a long backoff.
                if not self.acquire_lease():
                    self.disconnect()
                    self._stop.wait(max(_WAKE_SECONDS, self.settings.imap_lease_seconds / 3))
                    continue
                client = self._connect()
                self.sync()
                failures = 0
                self._wait_for_mail(client)
            except LeaseLost as exc:
                logger.info("mailbox %s: %s", self.mailbox, exc)
                self._has_lease = False
                self.disconnect()
            except RETRIED_ERRORS as exc:
                self.disconnect()
                failures = self._record_failure(exc)
                self._stop.wait(self._backoff(failures))
            except Exception as exc:  # a bug must not end mail capture; it is logged and retried
                logger.exception("mailbox %s: unexpected error", self.mailbox)
                self.disconnect()
                failures = self._record_failure(exc)
                self._stop.wait(self._backoff(failures))
        self.disconnect()
        self.release_lease()
        self.processor.close()


def poller_component(settings: Settings, db: Database) -> MailboxPoller | Disabled:
    """The runtime factory: a poller, or a note saying why mail capture is off."""
    if not settings.imap_host:
        return Disabled("mail poller", "CRM_IMAP_HOST is not set (use `crmbot ingest` for files)")
    try:
        from bot.mail.imap_auth import check_settings

        check_settings(settings)
    except MailConfigError as exc:
        return Disabled("mail poller", str(exc))
    return MailboxPoller(settings, db)
