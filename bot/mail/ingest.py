"""From raw message bytes to stored interactions: parse, convert, store in batches.

Shared by the IMAP poller and ``crmbot ingest`` (.eml files, a folder of them, an mbox or
a Maildir). Parsing is pure and CPU-bound, so large batches are parsed by a pool of
processes while the database work stays in this process.
"""

from __future__ import annotations

import hashlib
import logging
import mailbox
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.mail.parse import Address, ParsedEmail, parse_email
from bot.mail.parser_pool import ParserPool
from crm.config import Settings
from crm.db import Database
from crm.services.actor import Actor
from crm.services.errors import CRMError
from crm.services.mail_capture import (
    CapturePolicy,
    CaptureResult,
    CaptureSummary,
    IncomingMail,
    MailAddress,
    MailAttachment,
    capture_mails,
)

logger = logging.getLogger(__name__)

# Headers that mail stores add or change on their own; they must not change a message's hash.
_VOLATILE_HEADERS = re.compile(
    rb"^(?:status|x-status|x-keywords|x-uid|x-mozilla-[a-z-]+|content-length|lines|"
    rb"x-imapbase|x-dovecot-[a-z-]+|delivered-to|return-path|x-original-to):",
    re.IGNORECASE,
)
# Below this many messages a process pool costs more than it saves.
POOL_MIN_BATCH = 32


def content_hash(raw: bytes) -> str:
    """A hash of the message that survives the store it came from (mbox, Maildir, IMAP).

    Line endings are normalised, an mbox "From " line is dropped, and headers that stores
    add (Status, X-UID, Delivered-To, ...) are left out.
    """
    data = raw.replace(b"\r\n", b"\n")
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    head, sep, body = data.partition(b"\n\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = bool(_VOLATILE_HEADERS.match(line))
        if not skipping:
            kept.append(line)
    return hashlib.sha256(b"\n".join(kept) + sep + body).hexdigest()


def _addr(a: Address | None) -> MailAddress | None:
    return None if a is None else MailAddress(a.name or "", (a.address or "").lower())


def to_incoming(raw: bytes, parsed: ParsedEmail, *, source: str) -> IncomingMail:
    """The neutral object the CRM stores, from the parser's view of the message."""
    # The hash identifies only a message without a usable Message-ID (see external_id).
    has_id = bool((parsed.message_id or "").replace("\x00", "").strip())
    return IncomingMail(
        source=source,
        content_hash="" if has_id else content_hash(raw),
        raw=raw,
        raw_size=len(raw),
        message_id=parsed.message_id,
        from_=_addr(parsed.from_),
        original_sender=_addr(parsed.original_sender),
        forwarded=parsed.forwarded,
        forwarded_by=_addr(parsed.forwarded_by),
        to=[m for a in parsed.to if (m := _addr(a)) is not None],
        cc=[m for a in parsed.cc if (m := _addr(a)) is not None],
        subject=parsed.subject,
        new_text=parsed.new_text,
        quoted_text=parsed.quoted_text,
        signature=parsed.signature,
        forward_note=parsed.forward_note,
        date=parsed.date,
        in_reply_to=parsed.in_reply_to,
        references=list(parsed.references),
        auto_reply=parsed.auto_reply,
        auto_reason=parsed.auto_reason,
        list_mail=parsed.list_mail,
        attachments=[MailAttachment(a.name, a.content_type, a.size) for a in parsed.attachments],
        truncated=parsed.truncated,
        problems=list(parsed.problems),
        unusable_reason=parsed.quarantine_reason,
    )


def parse_to_incoming(
    raw: bytes, source: str, internal_domains: Sequence[str], max_body_chars: int
) -> IncomingMail:
    """Parse and convert one message; never raises (a failure becomes a quarantine reason)."""
    parsed = parse_email(raw, internal_domains=internal_domains, max_body_chars=max_body_chars)
    return _incoming(raw, parsed, source)


def _incoming(raw: bytes, parsed: ParsedEmail, source: str) -> IncomingMail:
    try:
        return to_incoming(raw, parsed, source=source)
    except Exception as exc:  # the batch must go on; the message is kept in quarantine
        logger.exception("could not convert a message from %s", source)
        return IncomingMail(
            source=source,
            content_hash=hashlib.sha256(raw).hexdigest(),
            raw=raw,
            raw_size=len(raw),
            unusable_reason=f"could not be read: {type(exc).__name__}",
        )


def _pool_size(settings: Settings) -> int:
    wanted = settings.mail_parse_workers or (os.cpu_count() or 1)
    return max(0, min(wanted, 32))


class MailProcessor:
    """Parses and stores batches of raw messages for one source."""

    def __init__(self, settings: Settings, db: Database, *, source: str, actor: Actor) -> None:
        self.settings = settings
        self.db = db
        self.source = source
        self.actor = actor
        self.policy = CapturePolicy.from_settings(settings, own_addresses=_own(settings))
        self._pool: ParserPool | None = None
        self._pool_size = _pool_size(settings)

    def parse(
        self, raws: Sequence[bytes], origins: Sequence[str] | None = None
    ) -> list[IncomingMail]:
        return self.parse_async(raws, origins)()

    def parse_async(
        self, raws: Sequence[bytes], origins: Sequence[str] | None = None
    ) -> Callable[[], list[IncomingMail]]:
        """Start parsing a batch; call the result to wait for the mails.

        With a process pool the caller can store the previous batch meanwhile, so parsing
        (CPU) and storing (database) overlap. ``origins`` says where each message was found
        (a file, a folder and UID), for the records of mail that is not stored.
        """
        parsing = self._parse_async(raws)
        if not origins:
            return parsing

        def with_origins() -> list[IncomingMail]:
            mails = parsing()
            for mail, origin in zip(mails, origins, strict=True):
                mail.origin = origin
            return mails

        return with_origins

    def _parse_async(self, raws: Sequence[bytes]) -> Callable[[], list[IncomingMail]]:
        internal = tuple(self.settings.internal_domains)
        limit = self.settings.mail_max_body_chars
        raws = list(raws)

        def in_process() -> list[IncomingMail]:
            return [parse_to_incoming(r, self.source, internal, limit) for r in raws]

        if self._pool_size < 2 or len(raws) < POOL_MIN_BATCH:
            return in_process
        size = max(1, -(-len(raws) // (self._pool_size * 2)))
        try:
            pool = self._start_pool()
            futures = [
                pool.submit(raws[i : i + size], internal, limit)
                for i in range(0, len(raws), size)
            ]
        except Exception:  # a broken pool (a worker was killed) must not lose the batch
            logger.warning("parser processes unavailable; parsing in this process", exc_info=True)
            self._give_up_pool()
            return in_process

        def wait() -> list[IncomingMail]:
            try:
                parsed = [m for f in futures for m in f.result()]
            except Exception:
                logger.warning("parser processes failed; parsing in this process", exc_info=True)
                self._give_up_pool()
                return in_process()
            # The processes send the parser's findings back; the CRM's view is made here.
            return [_incoming(r, p, self.source) for r, p in zip(raws, parsed, strict=True)]

        return wait

    def _start_pool(self) -> ParserPool:
        if self._pool is None:
            self._pool = ParserPool(self._pool_size)
        return self._pool

    def warm_up(self) -> None:
        """Start the parser processes now (a large sync is about to begin): they load the
        parser while the first batch is being fetched."""
        if self._pool_size < 2 or self._pool is not None:
            return
        try:
            self._start_pool()
        except Exception:  # the batches will find out and parse in this process
            logger.warning("parser processes unavailable", exc_info=True)

    def _give_up_pool(self) -> None:
        self.close()
        self._pool_size = 0

    def store(
        self,
        mails: Sequence[IncomingMail],
        *,
        in_same_transaction: Callable[[object, list[CaptureResult]], None] | None = None,
    ) -> list[CaptureResult]:
        """Store in one transaction; ``in_same_transaction`` commits with it (sync progress)."""
        with self.db.transaction() as session:
            results = capture_mails(session, mails=mails, policy=self.policy, actor=self.actor)
            if in_same_transaction is not None:
                in_same_transaction(session, results)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _own(settings: Settings) -> list[str]:
    user = settings.imap_user or ""
    return [user.lower()] if "@" in user else []


# --------------------------------------------------------------------------- sources


@dataclass
class IngestReport:
    source: str
    summary: CaptureSummary = field(default_factory=CaptureSummary)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, results: Iterable[CaptureResult]) -> None:
        results = list(results)
        self.summary.add(results)
        for r in results:
            if r.outcome.value == "quarantined" and r.reason:
                self.quarantine_reasons[r.reason] = self.quarantine_reasons.get(r.reason, 0) + 1

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            **self.summary.as_dict(),
            "total": self.summary.total,
            "quarantine_reasons": dict(self.quarantine_reasons),
        }


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _is_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(5) == b"From "
    except OSError:
        return False


def describe_path(path: Path) -> str:
    """'maildir', 'mbox', 'eml' or 'folder'; a clear error for anything else."""
    if not path.exists():
        raise CRMError(f"There is no file or folder {str(path)!r}.")
    if _is_maildir(path):
        return "maildir"
    if path.is_dir():
        return "folder"
    if _is_mbox(path):
        return "mbox"
    return "eml"


def _folder_files(path: Path) -> list[Path]:
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in (".eml", "") and not p.name.startswith(".")
    )


def count_messages(path: Path) -> int:
    kind = describe_path(path)
    if kind == "maildir":
        return sum(1 for d in ("cur", "new") for p in (path / d).iterdir() if p.is_file())
    if kind == "folder":
        return len(_folder_files(path))
    if kind == "mbox":
        with path.open("rb") as f:
            return sum(1 for line in f if line.startswith(b"From "))
    return 1


def iter_messages(path: Path) -> Iterator[bytes]:
    """Raw bytes of every message under ``path`` (a Maildir, an mbox, a folder or one file)."""
    for _origin, raw in iter_located_messages(path):
        yield raw


def iter_located_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(where, raw bytes) of every message under ``path``: the file, or "<mbox>#<n>" (from 1)
    and "<Maildir>#<key>" for a message inside a mailbox file or folder."""
    kind = describe_path(path)
    where = str(path.resolve())
    if kind == "maildir":
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(box.iterkeys()):
            try:
                yield f"{where}#{key}", box.get_bytes(key)
            except (KeyError, OSError):
                logger.warning("Maildir message %s vanished while reading", key)
        return
    if kind == "mbox":
        mbox = mailbox.mbox(path, factory=None, create=False)
        try:
            for number, key in enumerate(mbox.iterkeys(), start=1):
                yield f"{where}#{number}", mbox.get_bytes(key)
        finally:
            mbox.close()
        return
    files = _folder_files(path) if kind == "folder" else [path]
    for file in files:
        yield str(file.resolve()), file.read_bytes()


def ingest_path(
    path: Path,
    *,
    settings: Settings,
    db: Database,
    source: str | None = None,
    actor: Actor | None = None,
    batch_size: int = 200,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Store every message under ``path``; re-running it stores nothing twice."""
    name = source or f"ingest:{path.resolve().name or 'mail'}"
    if ":" not in name:
        name = f"ingest:{name}"
    processor = MailProcessor(
        settings, db, source=name[:200], actor=actor or Actor.system(f"mail:{name}")
    )
    report = IngestReport(source=name)
    done = 0
    batch: list[bytes] = []
    origins: list[str] = []
    pending: tuple[int, Callable[[], list[IncomingMail]]] | None = None

    def finish() -> None:
        nonlocal done
        if pending is None:
            return
        count, wait = pending
        report.add(processor.store(wait()))
        done += count
        if progress:
            progress(done)

    try:
        for origin, raw in iter_located_messages(path):
            batch.append(raw)
            origins.append(origin)
            if len(batch) >= batch_size:
                started = processor.parse_async(batch, origins)
                finish()  # the previous batch is stored while this one is parsed
                pending, batch, origins = (len(batch), started), [], []
        if batch:
            started = processor.parse_async(batch, origins)
            finish()
            pending = (len(batch), started)
        finish()
    finally:
        processor.close()
    return report
