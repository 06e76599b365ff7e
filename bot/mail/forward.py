"""Detect a message forwarded inline in a text body and unwrap it."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from bot.mail import patterns as P
from bot.mail.headers import HeaderSpan, clean, first_header, split_quote

logger = logging.getLogger(__name__)

_QUOTED_NAME_RE = re.compile(r"[\"“„«‘'](?P<n>[^\"“”„«»‘’']{1,80})[\"”»’']")


@dataclass(frozen=True)
class Address:
    name: str
    address: str  # lower-cased; "" when only a name is known


@dataclass
class ForwardedPart:
    """An inline-forwarded message found in a text body."""

    sender: Address | None  # original sender as printed in the forward header
    subject: str
    date: str
    body: str  # the forwarded message body, quote markers of the header level removed
    note: str  # text above the forwarded header (the forwarder's own note)
    explicit: bool  # announced by a "Forwarded message" marker, not just a quote header
    kind: str = "forward"  # the header's kind: forward, original, fields or attribution


def _clean_name(name: str) -> str:
    name = re.sub(r"<[^>]*>|\[mailto:[^\]]*\]|\(mailto:[^)]*\)", " ", name)
    name = name.strip().strip("\"'“”„«»‘’ ,;:").strip()
    name = re.sub(r"\s+", " ", name)
    return "" if "@" in name else name


def parse_sender(value: str) -> Address | None:
    """Parse a printed From value: 'John Doe <j@x.com>', 'John Doe [mailto:j@x.com]',
    'j@x.com', '"Doe, John" <j@x.com> on behalf of ...', or just 'John Doe'."""
    value = (value or "").strip()
    if not value:
        return None
    m = P.EMAIL_RE.search(value)
    if not m:
        name = _clean_name(value)
        return Address(name, "") if name else None
    address = m.group(0).strip(".").lower()
    head = value[: m.start()]
    head = re.split(r"[<\[(]", head)[0] if re.search(r"[<\[(]", head) else head
    name = _clean_name(head)
    return Address(name, address)


def parse_attribution(text: str) -> Address | None:
    """Sender of an attribution line: 'On <date>, "John Doe" <j@x.com> wrote:'."""
    m = P.EMAIL_RE.search(text)
    if not m:
        return None
    address = m.group(0).strip(".").lower()
    head = text[: m.start()].rstrip(" <([").rstrip()
    head = re.sub(r"mailto:\s*$", "", head).rstrip(" <([")
    q = list(_QUOTED_NAME_RE.finditer(head))
    if q:
        name = q[-1].group("n")
    else:
        name = re.split(r",\s*", head)[-1] if "," in head else ""
        # Drop leading date/time words left after the last comma ("12:46 John Doe").
        name = re.sub(r"^[\d\s:./-]+(?:[AaPp]\.?[Mm]\.?)?\s*", "", name)
    return Address(_clean_name(name), address)


def sender_of(span: HeaderSpan) -> Address | None:
    value = span.fields.get("from", "")
    if span.kind == "attribution" or (value and re.search(P.ATTRIBUTION_RE, value)
                                      and span.kind != "fields"):
        a = parse_attribution(value)
        if a is not None:
            return a
    return parse_sender(value)


def _body_after(lines: list[str], span: HeaderSpan) -> str:
    out: list[str] = []
    depth = span.depth
    # Apple Mail quotes the whole forward one level deeper than the marker line sometimes.
    for line in lines[span.end:]:
        d, content = split_quote(line)
        if depth and d >= depth:
            # strip exactly `depth` levels
            rest = line
            for _ in range(depth):
                rest = re.sub(r"^[ \t]{0,3}>[ \t]?", "", rest, count=1)
            out.append(rest)
        else:
            out.append(line)
    return "\n".join(out).strip("\n")


def _dedent(text: str) -> str:
    """Outlook for Mac indents the forwarded body by four spaces; remove common indent."""
    lines = text.split("\n")
    indents = [len(x) - len(x.lstrip(" ")) for x in lines if x.strip()]
    if not indents:
        return text
    n = min(indents)
    return "\n".join(x[n:] if len(x) >= n else x.lstrip(" ") for x in lines) if n else text


def _is_reply_subject(subject: str | None) -> bool:
    if not subject:
        return False
    return bool(P.REPLY_PREFIX_RE.match(subject)) and not P.FORWARD_PREFIX_RE.match(subject)


def _is_forward_subject(subject: str | None) -> bool:
    return bool(subject) and bool(P.FORWARD_PREFIX_RE.match(subject or ""))


def _followed_by_angle_quote(lines: list[str], span: HeaderSpan) -> bool:
    for line in lines[span.end:span.end + 6]:
        if not clean(line):
            continue
        return split_quote(line)[0] > span.depth
    return False


def find_forwarded(text: str, *, subject: str | None = None) -> ForwardedPart | None:
    """Find the (outermost) message forwarded inline in ``text``.

    ``subject`` (the carrying message's subject) settles the ambiguous cases: Outlook prints
    the same "From:/Sent:" block for replies and forwards, so a "Re:" subject means reply.

    Returns None when the text does not contain a forward, or when the first embedded
    header is a reply quote ("On ... wrote:" followed by '>' quotes).
    """
    try:
        return _find_forwarded(text or "", subject)
    except Exception:
        logger.exception("find_forwarded failed")
        return None


def _find_forwarded(text: str, subject: str | None) -> ForwardedPart | None:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    span = first_header(text)
    lines = text.split("\n")
    if span is None:
        return None
    note_lines = lines[: span.start]
    note = "\n".join(note_lines).strip()
    fwd_subject = _is_forward_subject(subject)
    reply_subject = _is_reply_subject(subject)
    if span.kind == "forward":
        pass  # explicit, whatever the subject says
    elif span.kind in ("original", "fields") and reply_subject:
        return None
    elif span.kind == "attribution" and not fwd_subject and (
            reply_subject or span.depth > 0 or _followed_by_angle_quote(lines, span)):
        # "On <date>, X wrote:" is how replies are quoted; it only introduces a forward
        # when the subject says so, or in clients (Outlook for Mac) that print it above an
        # unquoted/indented body - never when the attribution itself is inside a quote or
        # followed by '>' quoting, which is the reply convention.
        return None
    body = _dedent(_body_after(lines, span))
    sender = sender_of(span)
    return ForwardedPart(
        sender=sender,
        subject=span.fields.get("subject", "").strip(),
        date=span.fields.get("date", "").strip(),
        body=body,
        note=note,
        explicit=span.kind == "forward",
        kind=span.kind,
    )
