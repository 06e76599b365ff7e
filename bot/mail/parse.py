"""Pure e-mail parser: raw RFC 5322 bytes -> :class:`ParsedEmail`.

No I/O, no database: the poller/ingest code feeds bytes in and stores what comes out.
``parse_email`` never raises; a message it cannot make sense of comes back with
``problems`` filled in and, when unusable, ``quarantine_reason`` set.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from bot.mail import patterns as P
from bot.mail.forward import Address, ForwardedPart, find_forwarded, parse_sender
from bot.mail.quotes import drop_inline_quotes, normalize_newlines, split_reply
from bot.mail.signature import split_signature
from bot.mail.text import decode_bytes, html_to_text

logger = logging.getLogger(__name__)

__all__ = [
    "Address", "Attachment", "ForwardedPart", "ParsedEmail", "find_forwarded", "parse_email",
    "split_reply", "split_signature", "strip_subject_prefix",
]

_MAX_NESTING = 5
_KNOWN_HEADERS = {"from", "to", "cc", "subject", "date", "message-id", "received",
                  "mime-version", "content-type", "return-path", "sender", "reply-to",
                  "in-reply-to", "references", "delivered-to"}
# Line breaks inside a folded header value; removing them unfolds it (RFC 5322 2.2.3), as
# the standard library's modern policy does.
_UNFOLD_RE = re.compile(r"\r|\n")
# One address of a list in its commonest forms: a plain name (no quotes, commas or other
# specials) and <address>, or a bare address.
_ADDR = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+"
_SIMPLE_ADDRESS_RE = re.compile(rf"\s*(?:([A-Za-z0-9 .'_-]*?)\s*<({_ADDR})>|({_ADDR}))\s*")
# The old form with the name as a comment after the address: "jdoe@x.com (John Doe)". The
# modern parse drops comments, and with it the only name the sender gave.
_COMMENT_NAME_RE = re.compile(rf"\s*({_ADDR})\s*\(([^()\\]*)\)\s*")


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int


@dataclass
class ParsedEmail:
    forwarded: bool = False
    original_sender: Address | None = None
    forwarded_by: Address | None = None
    from_: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    date: datetime | None = None
    subject: str = ""
    new_text: str = ""
    quoted_text: str = ""
    signature: str = ""
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    auto_reply: bool = False
    auto_reason: str = ""  # why the message is automatic: an auto-reply, a delivery report
    list_mail: str = ""  # why the message is list or bulk mail (List-Id, a digest, ...)
    attachments: list[Attachment] = field(default_factory=list)
    forward_note: str = ""
    body_text: str = ""
    truncated: bool = False
    problems: list[str] = field(default_factory=list)
    quarantine_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        def addr(a: Address | None) -> dict[str, str] | None:
            return None if a is None else {"name": a.name, "address": a.address}

        return {
            "forwarded": self.forwarded,
            "original_sender": addr(self.original_sender),
            "forwarded_by": addr(self.forwarded_by),
            "from": addr(self.from_),
            "to": [addr(a) for a in self.to],
            "cc": [addr(a) for a in self.cc],
            "date": self.date.isoformat() if self.date else None,
            "subject": self.subject,
            "new_text": self.new_text,
            "quoted_text": self.quoted_text,
            "signature": self.signature,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "auto_reply": self.auto_reply,
            "auto_reason": self.auto_reason,
            "list_mail": self.list_mail,
            "attachments": [{"name": a.name, "type": a.content_type, "size": a.size}
                            for a in self.attachments],
            "forward_note": self.forward_note,
            "truncated": self.truncated,
            "problems": list(self.problems),
            "quarantine_reason": self.quarantine_reason,
        }


# --------------------------------------------------------------------------- boundaries
# A multipart boundary parameter (RFC 2046 5.1.1: 1-70 of these characters).
_BCHARS = rb"0-9A-Za-z'()+_,./:=?-"
_BOUNDARY_PARAM_RE = re.compile(
    rb'boundary[ \t]*=[ \t]*(?:"([ ' + _BCHARS + rb']{8,70})"|([' + _BCHARS + rb']{8,70}))'
    rb"(?=[\s;]|$)")


def _shared_boundaries(raw: bytes) -> tuple[bytes, list[bytes]]:
    """``raw`` with each multipart boundary renamed to a stock one of the same length.

    The standard parser compiles a regular expression for every boundary it meets, and
    boundaries are unique per message, so that compile (about a third of parsing a typical
    multipart message) is never cached. Renamed to stock names, the compiled patterns are
    reused. A boundary is renamed only where every occurrence of it is its parameter or
    follows "--" at a line start, where RFC 2046 allows nothing but a delimiter, so in
    conforming mail the rename touches no text; lengths stay the same, so sizes do too. The
    stored message is never changed: this is only what gets parsed.

    Returns the message and its boundaries as they are in it now.
    """
    params: dict[bytes, int] = {}
    # The parameter name is case-insensitive; searching a lowered copy (same offsets) is
    # several times faster than a case-insensitive pattern. The value keeps its case.
    for m in _BOUNDARY_PARAM_RE.finditer(raw.lower()):
        group = 1 if m.group(1) is not None else 2
        value = raw[m.start(group):m.end(group)]
        params[value] = params.get(value, 0) + 1
    boundaries: list[bytes] = []
    for index, (boundary, declared) in enumerate(params.items()):
        stock = (b"crmbot%d" % index).ljust(len(boundary), b"_")
        if (len(stock) == len(boundary) and stock not in raw
                and raw.count(boundary) == declared + raw.count(b"\n--" + boundary)):
            raw = raw.replace(boundary, stock)
            boundary = stock
        boundaries.append(boundary)
    return raw, boundaries


# A leaf part's own headers, read without parsing the message.
_PART_TYPE_RE = re.compile(rb"(?im)^content-type:[ \t]*([a-z0-9!#$&^_.+-]+)/")
_PART_BASE64_RE = re.compile(rb"(?im)^content-transfer-encoding:[ \t]*\"?base64\"?[ \t]*;?\r?$")
_HEAD_END_RE = re.compile(rb"\r?\n\r?\n")
_TEXTUAL = (b"text", b"multipart", b"message")
# Set on a part whose base64 body was left out of the parse: its decoded size.
_OMITTED_HEADER = "X-Crmbot-Omitted-Bytes"


def _without_binary_bodies(raw: bytes, boundaries: list[bytes]) -> bytes:
    """``raw`` with the body of every base64 part that is no text (a PDF, an image) left out,
    its decoded size noted in a header of the part.

    Nothing is read from those bodies but their size, yet the standard parser would go
    through them line by line: in typical business mail they are most of the bytes. A part
    is found between two delimiter lines of the declared boundaries, where the standard
    parser finds it too; a base64 body holds no "--" line, so its end is certain. As with
    the boundary names, only what gets parsed changes, never the stored message.
    """
    if not boundaries:
        return raw
    # Anchored on the line break before it (a literal prefix is far faster to find than "^").
    delimiter = re.compile(
        rb"\n--(?:" + b"|".join(re.escape(b) for b in boundaries) + rb")(--)?[ \t]*\r?(?=\n|\Z)")
    found = list(delimiter.finditer(raw))
    pieces: list[bytes] = []
    kept_to = 0
    for opening, closing in zip(found, found[1:], strict=False):
        if opening.group(1):  # a close delimiter: an epilogue follows, not a part
            continue
        start = opening.end() + 1
        head = _HEAD_END_RE.search(raw, start, closing.start())
        if head is None:
            continue
        headers = raw[start:head.start()]
        kind = _PART_TYPE_RE.search(headers)
        if kind is None or kind.group(1).lower() in _TEXTUAL or not _PART_BASE64_RE.search(headers):
            continue
        body_end = closing.start()  # the line break before a delimiter belongs to it
        if raw[body_end - 1:body_end] == b"\r":
            body_end -= 1
        try:
            size = len(binascii.a2b_base64(raw[head.end():body_end]))
        except (binascii.Error, ValueError):
            continue  # not clean base64: the standard parser's own repair applies
        pieces += [raw[kept_to:head.start()], b"\n%s: %d" % (_OMITTED_HEADER.encode(), size),
                   raw[head.start():head.end()]]
        kept_to = body_end
    if not pieces:
        return raw
    pieces.append(raw[kept_to:])
    return b"".join(pieces)


# --------------------------------------------------------------------------- subjects
def strip_subject_prefix(subject: str) -> str:
    """Remove Re:/Fwd:/AW:/WG:/TR:/RV:/SV:/... prefixes and [EXT] tags, repeatedly."""
    s = re.sub(r"\s+", " ", subject or "").strip()
    for _ in range(20):
        new = P.SUBJECT_PREFIX_RE.sub("", s, count=1).strip()
        if new == s:
            break
        s = new
    return s


# --------------------------------------------------------------------------- headers
def _undecoded(raw: str) -> str | None:
    """The unfolded value of a header with nothing to decode (ASCII, no encoded words), else
    None. For those the modern parse would only unfold the lines and build a header object
    to be read back as a string: most headers of most mail."""
    return _UNFOLD_RE.sub("", raw) if raw.isascii() and "=?" not in raw else None


class _Headers:
    """Header access that survives broken headers.

    The MIME tree is parsed with the lenient, fast ``compat32`` policy; the few headers we
    read are then parsed the way ``policy.default`` would (the stored raw values are the same
    under both policies), which costs a fraction of parsing every header of every part.
    """

    def __init__(self, msg: Message, raw: bytes, problems: list[str]) -> None:
        self.msg = msg
        self.raw = raw
        self.problems = problems
        self._first: dict[str, str] | None = None

    def _raw_value(self, name: str) -> str | None:
        if self._first is None:
            first: dict[str, str] = {}
            try:
                for key, value in self.msg.raw_items():
                    first.setdefault(key.lower(), value)
            except Exception:
                logger.debug("headers unreadable", exc_info=True)
            self._first = first
        return self._first.get(name.lower())

    def get(self, name: str, *, plain: bool = True) -> str | None:
        """The decoded value; ``plain=False`` for address lists, which always get the modern
        parse (the older ``getaddresses`` misreads lists such as ``a@x.com <a@x.com>``)."""
        raw = self._raw_value(name)
        if raw is None:
            return None
        if plain and (value := _undecoded(raw)) is not None:
            return value
        try:
            return str(email.policy.default.header_fetch_parse(name, raw))
        except Exception:
            logger.debug("header %s unreadable with default policy", name, exc_info=True)
        try:
            try:
                return str(make_header(decode_header(str(raw))))
            except Exception:
                return str(raw)
        except Exception:
            self.problems.append(f"unreadable {name} header")
            return None

    def addresses(self, name: str) -> list[Address]:
        raw = self._raw_value(name)
        plain = None if raw is None else _undecoded(raw)
        if plain is not None:
            simple = [_SIMPLE_ADDRESS_RE.fullmatch(item) for item in plain.split(",")]
            if all(simple):
                # "Name <a@b>" and bare "a@b" with a plain name: what the strict parse would
                # give, without building it.
                return [Address(" ".join((m.group(1) or "").split()),
                                (m.group(2) or m.group(3)).lower())
                        for m in simple if m is not None]
            commented = _COMMENT_NAME_RE.fullmatch(plain)
            if commented is not None:
                return [Address(" ".join(commented.group(2).split()), commented.group(1).lower())]
        value = self.get(name, plain=False)
        if not value:
            return []
        out: list[Address] = []
        try:
            pairs = getaddresses([value])
        except Exception:
            pairs = []
        for display, addr in pairs:
            addr = (addr or "").strip().strip("<>").lower()
            if "@" not in addr:
                m = P.EMAIL_RE.search(display or "")
                if not m:
                    continue
                addr = m.group(0).lower()
                display = ""
            out.append(Address(re.sub(r"\s+", " ", display or "").strip().strip('"'), addr))
        if not out:
            # getaddresses gives up on some malformed lists; scan for addresses instead.
            for m in P.EMAIL_RE.finditer(value):
                out.append(Address("", m.group(0).lower()))
        return out


def _msg_id(value: str | None) -> str | None:
    if not value:
        return None
    m = re.search(r"<([^<>\s]+)>", value)
    v = m.group(1) if m else value.strip().strip("<>").split()[0] if value.strip() else ""
    return v or None


# --------------------------------------------------------------------------- bodies
@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    embedded: list[bytes] = field(default_factory=list)  # message/rfc822 parts
    # multipart/digest (a list's digest) or multipart/report (a delivery or read report): the
    # messages in them are list traffic or returned mail, never a forward.
    containers: set[str] = field(default_factory=set)


def _part_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            return data
    except Exception:
        logger.debug("payload decode failed", exc_info=True)
    try:
        payload = part.get_payload()
        if isinstance(payload, str):
            return payload.encode("utf-8", errors="surrogateescape")
    except Exception:
        pass
    return b""


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        try:
            return str(make_header(decode_header(name)))
        except Exception:
            return name
    return None


def _decode_text(part: Message, problems: list[str]) -> str:
    data = _part_bytes(part)
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    text, problem = decode_bytes(data, charset)
    if problem:
        problems.append(problem)
    return text


def _collect(part: Message, out: _Body, problems: list[str], depth: int = 0,
             container: str = "") -> None:
    if depth > 20:
        problems.append("MIME structure too deep")
        return
    try:
        ctype = part.get_content_type()
    except Exception:
        ctype = "application/octet-stream"
    if part.is_multipart() and ctype != "message/rfc822":
        _collect_children(part, ctype, out, problems, depth, container)
        return
    try:
        disposition = (part.get_content_disposition() or "").lower() \
            if "content-disposition" in part else ""
    except Exception:
        disposition = ""
    # A file name is a "filename" or "name" parameter: most parts have neither, and reading
    # parameters is most of the cost of walking the parts.
    heads = f"{part.get('Content-Type', '')} {part.get('Content-Disposition', '')}"
    filename = _filename(part) if "name" in heads.lower() else None

    if ctype == "message/rfc822":
        inner = part.get_payload()
        inner_msg = inner[0] if isinstance(inner, list) and inner else inner
        data = b""
        if isinstance(inner_msg, Message):
            try:
                data = inner_msg.as_bytes(policy=email.policy.compat32)
            except Exception:
                try:
                    data = inner_msg.as_string().encode("utf-8", errors="replace")
                except Exception:
                    data = b""
        else:
            data = _part_bytes(part)
        name = filename
        if not name and isinstance(inner_msg, Message):
            try:
                subject = str(make_header(decode_header(str(inner_msg.get("Subject") or ""))))
                name = (subject.strip() or "message") + ".eml"
            except Exception:
                name = "message.eml"
        out.attachments.append(Attachment(name or "message.eml", ctype, len(data)))
        if data and not container:
            out.embedded.append(data)
        return
    is_attachment = disposition == "attachment" or (filename is not None and
                                                     disposition != "inline")
    if ctype in ("text/plain", "text/html") and not is_attachment:
        text = _decode_text(part, problems)
        (out.plain if ctype == "text/plain" else out.html).append(text)
        return
    if ctype.startswith("multipart/"):
        # A multipart whose delimiters never appear: the parser keeps its body as one string
        # (with a defect, reported below). That body is the only text the message has.
        out.plain.append(_decode_text(part, problems))
        return
    omitted = part.get(_OMITTED_HEADER)
    size = int(omitted) if omitted and omitted.isdigit() and not part.get_payload() else None
    out.attachments.append(
        Attachment(filename or "", ctype, len(_part_bytes(part)) if size is None else size))


def _collect_children(part: Message, ctype: str, out: _Body, problems: list[str], depth: int,
                      container: str) -> None:
    try:
        children = part.get_payload()
    except Exception:
        children = []
    if not isinstance(children, list):
        children = []
    if ctype in ("multipart/digest", "multipart/report"):
        out.containers.add(ctype)
        container = ctype
    if ctype == "multipart/alternative":
        # Prefer the plain-text alternative; fall back to HTML when it is empty. Plain text
        # comes first (RFC 2046 orders alternatives from the plainest): once it has text, the
        # HTML twin is not decoded at all.
        sub = _Body()
        for child in children:
            if not isinstance(child, Message):
                continue
            if any(t.strip() for t in sub.plain) and child.get_content_type() == "text/html" \
                    and child.get_content_disposition() != "attachment":
                continue
            _collect(child, sub, problems, depth + 1, container)
        if any(t.strip() for t in sub.plain):
            out.plain.extend(sub.plain)
        else:
            out.html.extend(sub.html)
        out.attachments.extend(sub.attachments)
        out.embedded.extend(sub.embedded)
        out.containers |= sub.containers
        return
    for child in children:
        if isinstance(child, Message):
            _collect(child, out, problems, depth + 1, container)


# --------------------------------------------------------------------------- helpers
def _is_internal(address: str, internal: Sequence[str]) -> bool:
    if not address or "@" not in address:
        return False
    domain = address.rsplit("@", 1)[1].lower().strip(".")
    return any(domain == d or domain.endswith("." + d) for d in internal)


def _detect_auto_reply(h: _Headers, subject: str, sender: Address | None) -> str:
    """Why the message was sent by a program rather than a person ("" when it was not):
    auto-replies (RFC 3834), delivery and read reports (RFC 3462), bounces."""
    auto = (h.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto[:40]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "X-Autogenerated"):
        if h.get(name):
            return f"{name} header"
    if h.get("X-MS-Exchange-Message-Is-Ndr") is not None:  # Exchange marks its bounces so
        return "a delivery report (Exchange)"
    prec = (h.get("Precedence") or "").strip().lower()
    if prec in ("bulk", "auto_reply", "junk"):
        return f"Precedence: {prec}"
    ctype = (h.get("Content-Type") or "").strip().lower()
    if ctype.startswith("multipart/report"):
        kind = re.search(r"report-type\s*=\s*\"?([\w-]+)", ctype)
        return f"a {kind.group(1) if kind else 'delivery'} report"
    if (h.get("Return-Path") or "").strip() == "<>":
        # The null sender: only notifications (bounces, auto-replies, receipts) use it.
        return "sent with an empty Return-Path (a notification)"
    if sender is not None and re.match(r"(?i)(?:mailer-daemon|postmaster)@", sender.address):
        return f"sent by {sender.address} (a delivery report)"
    if P.AUTO_REPLY_SUBJECT_RE.search(subject or ""):
        return f"subject {subject[:80]!r}"
    return ""


_LIST_HEADERS = ("List-Id", "List-Post", "Mailing-List", "List-Unsubscribe", "X-Mailman-Version")


def _detect_list(h: _Headers, containers: set[str], sender: Address | None) -> str:
    """Why the message is list or bulk mail ("" when it is not): list headers (RFC 2369,
    2919), Precedence: list, a digest, or list software as the sender."""
    for name in _LIST_HEADERS:
        value = h.get(name)
        if value is not None:
            return f"{name}: {' '.join(value.split())[:80]}".rstrip(": ")
    if (h.get("Precedence") or "").strip().lower() == "list":
        return "Precedence: list"
    if "multipart/digest" in containers:
        return "a mailing-list digest"
    for address in [*(a.address for a in h.addresses("Sender")),
                    *([sender.address] if sender else [])]:
        if re.match(r"(?i)(?:owner-.+|.+-(?:request|bounces|owner))@", address):
            return f"sent by list software ({address})"
    return ""


def _display(a: Address | None) -> str | None:
    if a is None:
        return None
    return f"{a.name} <{a.address}>" if a.name else a.address


def _strip_message(text: str, sender: Address | None) -> tuple[str, str, str]:
    """(new_text, quoted_text, signature) of one message body."""
    new, quoted = split_reply(text)
    new, inline = drop_inline_quotes(new)
    if inline:
        quoted = f"{inline}\n\n{quoted}" if quoted else inline
    body, sig = split_signature(new, sender=_display(sender))
    return body.strip(), quoted.strip(), sig.strip()


# --------------------------------------------------------------------------- main entry
def parse_email(raw: bytes, *, internal_domains: Sequence[str] = (),
                max_body_chars: int = 1_000_000) -> ParsedEmail:
    """Parse one message.  Never raises."""
    try:
        return _parse(raw, tuple(d.lower().strip(".") for d in internal_domains if d),
                      max_body_chars, 0)
    except Exception as exc:  # last line of defence: the ingest loop must go on
        logger.exception("parse_email failed")
        return ParsedEmail(problems=[f"parser error: {type(exc).__name__}"],
                           quarantine_reason="message could not be parsed")


def parse_batch(raws: Sequence[bytes], internal_domains: Sequence[str],
                max_body_chars: int) -> list[ParsedEmail]:
    """``parse_email`` for each message, for a parser process: the decoded body is left out of
    what is sent back (the caller uses the new and quoted text), and this module imports
    nothing of the CRM, so a new parser process is ready at once."""
    out = []
    for raw in raws:
        parsed = parse_email(raw, internal_domains=internal_domains,
                             max_body_chars=max_body_chars)
        parsed.body_text = ""
        out.append(parsed)
    return out


def _parse(raw: bytes, internal: tuple[str, ...], max_chars: int, level: int) -> ParsedEmail:
    result = ParsedEmail()
    problems = result.problems
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogateescape")
    if not isinstance(raw, (bytes, bytearray)) or not raw.strip():
        result.quarantine_reason = "empty message"
        problems.append("empty message")
        return result
    raw = bytes(raw)
    # compat32 parses the MIME tree without building header objects for every part (several
    # times faster on real mail); _Headers reads the headers we need the modern way.
    msg = email.message_from_bytes(_without_binary_bodies(*_shared_boundaries(raw)),
                                   policy=email.policy.compat32)
    h = _Headers(msg, raw, problems)

    try:
        keys = {k.lower() for k in msg}
    except Exception:
        keys = set()
    if not keys & _KNOWN_HEADERS:
        result.quarantine_reason = "not an email (no message headers)"
        problems.append("no message headers")

    # ---- addresses
    froms = h.addresses("From")
    if froms:
        result.from_ = froms[0]
    else:
        if h.get("From") is None:
            problems.append("no From header")
        else:
            problems.append("From header has no address")
        for alt in ("Sender", "Reply-To", "Return-Path"):
            alts = h.addresses(alt)
            if alts:
                result.from_ = alts[0]
                problems.append(f"sender taken from {alt}")
                break
    if result.from_ is None and result.quarantine_reason is None:
        result.quarantine_reason = "no sender address"
    result.to = h.addresses("To")
    result.cc = h.addresses("Cc")

    # ---- date
    date_raw = h.get("Date")
    if date_raw:
        try:
            dt = parsedate_to_datetime(date_raw)
            result.date = (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC))
        except Exception:
            problems.append("unparseable Date header")
    raw_subject = re.sub(r"\s+", " ", h.get("Subject") or "").strip()
    result.subject = strip_subject_prefix(raw_subject)
    result.message_id = _msg_id(h.get("Message-ID"))
    result.in_reply_to = _msg_id(h.get("In-Reply-To"))
    result.references = re.findall(r"<([^<>\s]+)>", h.get("References") or "")
    result.auto_reason = _detect_auto_reply(h, raw_subject, result.from_)
    result.auto_reply = bool(result.auto_reason)

    # ---- body
    body = _Body()
    _collect(msg, body, problems)
    try:
        if msg.defects:
            problems.append("MIME defects: " + ", ".join(sorted({type(d).__name__
                                                                  for d in msg.defects})))
    except Exception:
        pass
    result.attachments = body.attachments
    result.list_mail = _detect_list(h, body.containers, result.from_)
    if "multipart/report" in body.containers and not result.auto_reply:
        result.auto_reply, result.auto_reason = True, "a delivery report"
    if any(t.strip() for t in body.plain):
        text = "\n\n".join(t for t in body.plain if t.strip())
    elif body.html:
        text = html_to_text("\n".join(body.html))
    else:
        text = ""
    text = normalize_newlines(text).replace("\x00", "")
    if len(text) > max_chars:
        text = text[:max_chars]
        result.truncated = True
        problems.append(f"body truncated to {max_chars} characters")
    result.body_text = text
    if not text.strip() and not body.embedded:
        problems.append("no text body")

    _resolve_content(result, raw_subject, text, body.embedded, h, internal, max_chars, level)
    return result


def _resolve_content(result: ParsedEmail, raw_subject: str, text: str, embedded: list[bytes],
                     h: _Headers, internal: tuple[str, ...], max_chars: int,
                     level: int) -> None:
    """Decide forwarded / original sender and fill the text fields."""
    outer = result.from_
    if result.auto_reply or result.list_mail:
        # Reports quote the returned message's headers, digests carry other people's mail:
        # neither is anyone forwarding a customer's mail to us.
        result.new_text, result.quoted_text, result.signature = _strip_message(text, outer)
        return
    chain: list[ForwardedPart] = []
    part = find_forwarded(text, subject=raw_subject)
    if part is not None and internal and outer is not None \
            and not _is_internal(outer.address, internal) and not part.explicit \
            and part.sender is not None and _is_internal(part.sender.address, internal):
        # An external sender quoting our own staff: that is a reply, not a forward.
        part = None
    while part is not None and len(chain) < _MAX_NESTING:
        chain.append(part)
        inner = find_forwarded(part.body, subject=part.subject or None)
        if inner is None:
            break
        # Descend only through our own people (or senders we cannot identify): an external
        # sender is the customer, and what they forwarded or quoted is their history.
        sender = part.sender
        if sender is None or not sender.address or _is_internal(sender.address, internal) \
                or _passes_on(part, inner):
            part = inner
            continue
        break

    if chain:
        result.forwarded = True
        result.forwarded_by = outer
        notes = [_note_text(chain[0].note, outer)]
        for middle, passed in zip(chain, chain[1:], strict=False):
            # What a forwarder in the middle wrote above the message they passed on.
            note = _note_text(passed.note, middle.sender)
            if note and middle.sender is not None:
                notes.append(f"{_display(middle.sender)}: {note}")
        result.forward_note = "\n\n".join(n for n in notes if n)
        # Innermost sender that is not one of us; a name-only sender counts (no address to
        # prove it internal).
        chosen: ForwardedPart | None = None
        for p in reversed(chain):
            if p.sender is not None and not _is_internal(p.sender.address, internal):
                chosen = p
                break
        if chosen is not None:
            result.original_sender = chosen.sender
            content = chosen.body
        else:
            result.original_sender = _header_evidence(h, internal)
            content = chain[-1].body
        result.new_text, result.quoted_text, result.signature = _strip_message(
            content, result.original_sender)
        return

    if embedded and level < _MAX_NESTING:
        # Forwarded as attachment: the attached message is the original.
        attached = _parse(embedded[0], internal, max_chars, level + 1)
        result.forwarded = True
        result.forwarded_by = outer
        result.forward_note, _q, _s = _strip_message(text, outer)
        if attached.forwarded and attached.original_sender is not None:
            result.original_sender = attached.original_sender
        elif attached.from_ is not None and not _is_internal(attached.from_.address, internal):
            result.original_sender = attached.from_
        else:
            result.original_sender = (attached.original_sender or _header_evidence(h, internal))
        result.new_text = attached.new_text
        result.quoted_text = attached.quoted_text
        result.signature = attached.signature
        if attached.problems:
            result.problems.extend(f"attached message: {p}" for p in attached.problems)
        return

    result.new_text, result.quoted_text, result.signature = _strip_message(text, outer)
    # A forward whose body we could not unwrap, announced only by the subject and headers.
    if internal and outer is not None and _is_internal(outer.address, internal) \
            and P.FORWARD_PREFIX_RE.match(raw_subject or ""):
        evidence = _header_evidence(h, internal)
        if evidence is not None:
            result.forwarded = True
            result.forwarded_by = outer
            result.original_sender = evidence
            result.problems.append("forward detected from headers only")


# A forwarder's note is a line or two ("FYI", "see Carol's question below"); more than this is
# a message of its own.
_NOTE_MAX_LINES = 3
_NOTE_MAX_CHARS = 160


def _note_text(note: str, writer: Address | None) -> str:
    return split_signature(split_reply(note)[0], sender=_display(writer))[0].strip()


def _passes_on(part: ForwardedPart, inner: ForwardedPart) -> bool:
    """Whether the sender of ``part`` only passed ``inner`` on (a forward with at most a short
    note), so that the author of ``inner`` is the one writing to us.

    A customer's colleague forwarding their boss's mail adds "see below"; someone who writes a
    message of their own and quotes or attaches earlier mail under it is the author.
    """
    forwarded = inner.explicit or (inner.kind != "attribution"
                                   and P.FORWARD_PREFIX_RE.match(part.subject or "") is not None)
    if not forwarded:
        return False
    note = _note_text(inner.note, part.sender)
    lines = [line for line in note.splitlines() if line.strip()]
    return len(lines) <= _NOTE_MAX_LINES and len(note) <= _NOTE_MAX_CHARS


def _header_evidence(h: _Headers, internal: tuple[str, ...]) -> Address | None:
    """Original sender from X-Original-Sender / Reply-To / X-Forwarded-For, if external."""
    for name in ("X-Original-Sender", "X-Original-From", "Reply-To", "X-Forwarded-For"):
        for a in h.addresses(name):
            if not _is_internal(a.address, internal):
                return a
    return None


def parse_address(value: str) -> Address | None:
    """Parse a free-form 'Name <address>' string (helper for callers)."""
    return parse_sender(value)
