"""Find the header that introduces a quoted or forwarded message inside a text body.

One mechanism serves both the reply splitter (``quotes.py``) and the forward finder
(``forward.py``): a scan over the lines that recognises

* separator markers ("---------- Forwarded message ---------", "-----Original Message-----"
  and their translations, see ``patterns.FORWARD_MARKERS`` / ``ORIGINAL_MARKERS``),
* blocks of header fields ("From: / Sent: / To: / Subject:" in any language),
* attribution lines ("On <date>, <who> wrote:", "Am <date> schrieb <who>:", ...), also when a
  client wrapped them over several lines,
* bare "<date> <who> <address>:" lines that some clients write without a verb.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from bot.mail import patterns as P

_QUOTE_PREFIX_RE = re.compile(r"^((?:[ \t]{0,3}>)+)[ \t]?")
_SEPARATOR_RE = re.compile(r"^\s*[*_]*\s*(?:[-=_~*#+—–]\s*){3,}[*_]*\s*$")
_MAX_ATTRIBUTION_CHARS = 320
_MAX_JOIN = 5


@dataclass
class HeaderSpan:
    """Lines ``start..end-1`` form a header introducing an embedded message."""

    start: int
    end: int
    kind: str  # "forward" | "original" | "fields" | "attribution"
    depth: int  # quote depth ('>' count) of the header lines
    fields: dict[str, str] = field(default_factory=dict)
    text: str = ""  # the marker or attribution text as written

    @property
    def is_forward_marker(self) -> bool:
        return self.kind == "forward"


def split_quote(line: str) -> tuple[int, str]:
    """Return (quote depth, content without the '>' prefix)."""
    m = _QUOTE_PREFIX_RE.match(line)
    if not m:
        return 0, line
    return m.group(1).count(">"), line[m.end():]


# BOMs, zero-width spaces and the bidirectional marks that right-to-left clients (Hebrew,
# Arabic) wrap around names and addresses: invisible, but they break every pattern.
_INVISIBLE = dict.fromkeys(
    [0xFEFF, 0x061C, 0x200B, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def clean(line: str) -> str:
    # The invisible marks are all outside ASCII; most lines are ASCII and need only strip().
    return line.strip() if line.isascii() else line.translate(_INVISIBLE).strip()


def is_separator(line: str) -> bool:
    return bool(_SEPARATOR_RE.match(line))


def parse_field_line(content: str) -> tuple[str, str] | None:
    m = P.FIELD_LINE_RE.match(content)
    if not m:
        return None
    name = P.field_of(m.group("label"))
    if name is None:
        return None
    value = m.group("value").strip().strip("*").strip()
    return name, value


def parse_inline_fields(text: str) -> dict[str, str]:
    """Parse 'From: a <x@y>To: b <z@w>Subject: s' (labels glued together on one line)."""
    out: dict[str, str] = {}
    matches = list(P.INLINE_FIELD_RE.finditer(text))
    # Only labels at the start or right after a closing '>' / quote / space count as labels.
    good = [m for m in matches if m.start() == 0 or not text[m.start() - 1].isalnum()
            or text[m.start() - 1] in ">\"'"]
    for i, m in enumerate(good):
        name = P.field_of(m.group("label"))
        if name is None or name in out:
            continue
        end = good[i + 1].start() if i + 1 < len(good) else len(text)
        out[name] = text[m.end():end].strip()
    return out


_ADDRESS_ONLY = re.compile(
    r'^(?:(?:"[^"]{1,80}"|[^"<>@,;:]{1,80})\s*<' + P.EMAIL_RE.pattern + r">|<?"
    + P.EMAIL_RE.pattern + r">?)$"
)


def _bare_fields(lines: list[str], start: int, depth: int) -> tuple[dict[str, str], int]:
    """Header fields printed without colons, right under an "Original Message" marker (eM
    Client): a From whose whole value is an address ("Ann" <a@x>, Ann <a@x>, a@x) first, then
    at least one other field, one per line. A sentence such as "From what Ann (a@x) said"
    is not a field."""
    fields: dict[str, str] = {}
    i = start
    while i < len(lines) and i < start + 8:
        d, content = split_quote(lines[i])
        m = P.BARE_FIELD_LINE_RE.match(clean(content)) if d == depth else None
        name = P.field_of(m.group("label")) if m else None
        if m is None or name is None or name in fields:
            break
        if not fields and (name != "from" or not _ADDRESS_ONLY.match(m.group("value").strip())):
            break
        fields[name] = m.group("value").strip()
        i += 1
    return (fields, i) if len(fields) >= 2 else ({}, start)


def _new_field_follows(lines: list[str], blank: int, fields: dict[str, str]) -> bool:
    """Whether the first non-blank line after ``blank`` is a header field not seen yet."""
    for line in lines[blank + 1 : blank + 3]:
        content = clean(split_quote(line)[1])
        if content:
            parsed = parse_field_line(content)
            return parsed is not None and parsed[0] not in fields
    return False


def _collect_fields(lines: list[str], start: int, depth: int,
                    min_fields: int) -> tuple[dict[str, str], int]:
    """Parse a run of header-field lines beginning at ``start``.

    Returns the fields and the index after the block; an empty dict if fewer than
    ``min_fields`` distinct fields were found.
    """
    fields: dict[str, str] = {}
    order: list[str] = []
    i = start
    last: str | None = None
    blanks = 0
    end = start
    while i < len(lines) and i < start + 20:
        d, content = split_quote(lines[i])
        content_c = clean(content)
        if d < depth and content_c:
            break
        if not content_c:
            blanks += 1
            # A single blank line may separate fields (double-spaced HTML conversions: Apple
            # Mail puts each field in its own block, in the order From, Subject, Date, To);
            # the block goes on only when a field not seen yet follows the blank.
            if blanks > 1 or (len(fields) >= 2 and not _new_field_follows(lines, i, fields)):
                break
            i += 1
            continue
        parsed = parse_field_line(content_c)
        if parsed:
            name, value = parsed
            if name in fields and name != "cc":
                break  # a second From: starts another header
            fields.setdefault(name, value)
            order.append(name)
            last = name
            blanks = 0
            i += 1
            end = i
            continue
        # Long values wrap: address lists onto lines with addresses, any value onto a line
        # that is followed by another header field.
        nxt = clean(split_quote(lines[i + 1])[1]) if i + 1 < len(lines) else ""
        if last is not None and blanks == 0 and (
                (last in ("to", "cc") and ("@" in content_c or content.startswith((" ", "\t"))))
                or (nxt and parse_field_line(nxt))):
            fields[last] += " " + content_c
            i += 1
            end = i
            continue
        break
    if len(set(order)) < min_fields:
        return {}, start
    return fields, end


def _is_sentence(value: str) -> bool:
    """Prose ("our side, everything is ready to sign."), not a header value."""
    words = value.split()
    return len(words) >= 4 and value.rstrip("*_ ").endswith((".", "!", "?", ":"))


def _fields_look_like_header(fields: dict[str, str]) -> bool:
    """Labels alone prove nothing ("To: whom it may concern", "From: our side, ..."): a header
    block also names someone by address, or carries a date beside a sender or recipient that
    reads as a name rather than a sentence."""
    keys = set(fields)
    if not (("from" in keys and keys & {"date", "to", "subject", "cc", "reply_to"})
            or ({"subject", "date"} <= keys and bool(keys & {"to", "from"}))):
        return False
    people = [fields[k] for k in ("from", "to", "cc", "reply_to") if k in fields]
    if any(P.EMAIL_RE.search(v) for v in people):
        return True
    date = fields.get("date", "")
    return (bool(P.DATEISH_RE.search(date)) and not _is_sentence(date)
            and not any(_is_sentence(v) or len(v.split()) > 8 for v in people))


_DIGIT_RE = re.compile(r"\d")


def _has_date(text: str) -> bool:
    # Every date or time has a digit; most lines have none, and the digit is quick to seek.
    return _DIGIT_RE.search(text) is not None and P.DATEISH_RE.search(text) is not None


def _attribution_match(text: str) -> bool:
    if len(text) > _MAX_ATTRIBUTION_CHARS:
        return False
    if not text.isascii() and P.ATTRIBUTION_ASIAN_RE.search(text):
        return True
    # Ordinary sentences ("As Bob wrote: ...") have neither a date nor an address; checked
    # first, as most lines are such sentences and the verb pattern is the costlier one.
    dated = "@" in text or _has_date(text)
    if not dated and "you" not in text.lower():
        return False
    m = P.ATTRIBUTION_RE.search(text)
    if not m:
        return False
    head = text[: m.start()]
    if not head.strip():
        return False
    return dated or re.search(r"\byou\b", head, re.I) is not None


def _dated_address_line(text: str) -> bool:
    """'30.09.2017, 18.30, "John" <j@x.com>:' or '2013/7/20 sam <x@y.org>' (no verb)."""
    if len(text) > 200:
        return False
    has_addr = "@" in text and P.EMAIL_RE.search(text) is not None
    if text.rstrip().endswith((":", "：")) and has_addr and _has_date(text):
        # A date in the first half and the address at the end, like a header, not a sentence
        # that happens to end with a colon.
        return text.count(" ") <= 18
    if P.ISO_DATE_START_RE.match(text) and (has_addr or re.search(r"GMT|UTC", text)):
        return text.count(" ") <= 12 and not text.rstrip().endswith((".", "?", "!"))
    return False


def _try_attribution(lines: list[str], i: int, depth: int) -> tuple[int, str] | None:
    """Attribution starting at line i, possibly wrapped over up to _MAX_JOIN lines."""
    first = clean(split_quote(lines[i])[1])
    if not first:
        return None
    if _attribution_match(first) or _dated_address_line(first):
        return i + 1, first
    if first.endswith((".", "!", "?")) or len(first) > _MAX_ATTRIBUTION_CHARS:
        return None
    # Wrapped attributions start with something header-like: a date, an address, '<'.
    if not (_has_date(first) or "@" in first or first.endswith("<")):
        return None
    parts = [first]
    for k in range(1, _MAX_JOIN + 1):
        j = i + k
        if j >= len(lines):
            break
        d, content = split_quote(lines[j])
        if d != depth and clean(content):
            break
        parts.append(clean(content))
        joined = " ".join(p for p in parts if p)
        joined = re.sub(r"<\s+", "<", re.sub(r"\s+>", ">", joined))
        if len(joined) > _MAX_ATTRIBUTION_CHARS:
            break
        if _attribution_match(joined) or (k <= 2 and _dated_address_line(joined)):
            rest = " ".join(p for p in parts[1:] if p)
            if not _has_date(first) and (_attribution_match(rest) or _dated_address_line(rest)):
                # The attribution starts on a later line; `first` is text above it
                # (e.g. a signature line with an address).
                return None
            # The last joined line must end the attribution itself, not be text that merely
            # contains "wrote".
            return j + 1, joined
    return None


# Reading further than this many lines is pointless: what is new is at the top.
MAX_LINES = 3000


@functools.lru_cache(maxsize=8)
def _first_header_anywhere(text: str) -> HeaderSpan | None:
    return find_header(text.split("\n", MAX_LINES)[:MAX_LINES])


def first_header(text: str, *, top_level_only: bool = False) -> HeaderSpan | None:
    """The first header in ``text`` (its first MAX_LINES lines), at any quote depth or, with
    ``top_level_only``, outside quotes.

    The forward finder and the reply splitter both look for it in the same body: the scan
    is done once. When the first header is quoted, the first unquoted one can only come after
    it. The span returned is shared: callers must not change it.
    """
    span = _first_header_anywhere(text)
    if not top_level_only or span is None or span.depth == 0:
        return span
    return find_header(text.split("\n", MAX_LINES)[:MAX_LINES], span.start, top_level_only=True)


def find_header(lines: list[str], start: int = 0, *, top_level_only: bool = False,
                stop: int | None = None) -> HeaderSpan | None:
    """Return the first header (in line order) at or after ``start``."""
    n = len(lines) if stop is None else min(stop, len(lines))
    i = start
    while i < n:
        depth, content = split_quote(lines[i])
        if top_level_only and depth > 0:
            i += 1
            continue
        c = clean(content)
        if not c:
            i += 1
            continue
        span = _header_at(lines, i, depth, c)
        if span is not None:
            return span
        i += 1
    return None


def _header_at(lines: list[str], i: int, depth: int, c: str) -> HeaderSpan | None:
    # 1. separator markers, with the header fields below (or on the same line: Yahoo).
    for kind, rx in (("forward", P.FORWARD_MARKER_RE), ("original", P.ORIGINAL_MARKER_RE)):
        m = rx.match(c)
        if not m:
            continue
        fields: dict[str, str] = {}
        rest = (m.groupdict().get("rest") or "").strip()
        if rest:
            fields = parse_inline_fields(rest)
        j = i + 1
        # Skip blank lines (and a deeper quote level: Apple Mail quotes the fields).
        while j < len(lines) and not clean(split_quote(lines[j])[1]) and j < i + 4:
            j += 1
        block_depth = split_quote(lines[j])[0] if j < len(lines) else depth
        more, end = _collect_fields(lines, j, min(block_depth, depth) if block_depth < depth
                                    else block_depth, 1)
        if not more and not fields and kind == "original":
            more, end = _bare_fields(lines, j, block_depth)
        for k, v in more.items():
            fields.setdefault(k, v)
        if not more:
            end = i + 1
            # Some clients put an attribution line under the marker instead of fields.
            if j < len(lines):
                att = _try_attribution(lines, j, split_quote(lines[j])[0])
                if att:
                    end, text = att
                    fields.setdefault("from", text)
        # The forwarded message (its fields and its body) is quoted as deep as its fields:
        # "Begin forwarded message:" above a '>'-quoted block (Apple Mail, Spark, mutt).
        inner = block_depth if more and block_depth > depth else depth
        return HeaderSpan(i, end, kind, inner, fields, c)
    if P.LOTUS_FORWARD_RE.match(c):
        return HeaderSpan(i, i + 1, "forward", depth, {}, c)
    # 2. a block of header fields.
    if parse_field_line(c):
        fields, end = _collect_fields(lines, i, depth, 2)
        if fields and _fields_look_like_header(fields):
            return HeaderSpan(i, end, "fields", depth, fields, c)
    # 3. attribution lines.
    att = _try_attribution(lines, i, depth)
    if att:
        end, text = att
        return HeaderSpan(i, end, "attribution", depth, {"from": text}, text)
    # 4. a separator line right above a header belongs to it ("____\nFrom: ...").
    if is_separator(c):
        j = i + 1
        while j < len(lines) and j <= i + 2 and not clean(split_quote(lines[j])[1]):
            j += 1
        if j < len(lines) and j <= i + 2:
            d2, c2 = split_quote(lines[j])
            if d2 == depth:
                inner = _header_at(lines, j, d2, clean(c2))
                if inner is not None:
                    inner.start = i
                    return inner
    return None
