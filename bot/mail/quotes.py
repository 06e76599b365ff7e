"""Split a plain-text reply into what the sender newly wrote and the quoted rest."""

from __future__ import annotations

import logging
import re

from bot.mail import patterns as P
from bot.mail.headers import MAX_LINES, HeaderSpan, clean, find_header, first_header, split_quote

logger = logging.getLogger(__name__)

# Supercite-style quoting ("Richard> text", "C> text") and old Gmail's "| text".
_NAMED_QUOTE_RE = re.compile(r"^\s*[A-Za-z]{1,10}>(?:\s|$)")
_PIPE_QUOTE_RE = re.compile(r"^\|(?:\s|$)")
_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_SIG_DELIM_RE = re.compile(r"^\s*--\s*$")


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_quote(line: str) -> bool:
    return bool(split_quote(line)[0] or _NAMED_QUOTE_RE.match(line) or _PIPE_QUOTE_RE.match(line))


def _classify(lines: list[str]) -> list[str]:
    """'b' blank, 'q' quoted, 't' text; fenced code blocks are always text."""
    out: list[str] = []
    in_fence = False
    for line in lines:
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            out.append("t")
            continue
        if in_fence:
            out.append("t")
        elif not clean(line):
            out.append("b")
        elif _is_quote(line):
            out.append("q")
        else:
            out.append("t")
    return out


def _trailing_quote_start(kinds: list[str]) -> int | None:
    """Start of the last run of quoted lines, if nothing but blanks follows it."""
    i = len(kinds)
    while i > 0 and kinds[i - 1] == "b":
        i -= 1
    if i == 0 or kinds[i - 1] != "q":
        return None
    while i > 0 and kinds[i - 1] in ("q", "b"):
        i -= 1
    while i < len(kinds) and kinds[i] == "b":
        i += 1
    return i


def _with_attribution(lines: list[str], kinds: list[str], start: int) -> int:
    """A trailing quote's own attribution line right above it ("Sam Staff wrote:", "Anna
    schrieb:"), with no date or address to be a quote header by itself, belongs to the quote."""
    i = start - 1
    while i >= 0 and kinds[i] == "b":
        i -= 1
    if i < 0 or kinds[i] != "t":
        return start
    line = clean(lines[i])
    if line.endswith((":", "：")) and len(line.split()) <= 12 and P.ATTRIBUTION_RE.search(line):
        return i
    return start


def _mask_signature_after_quotes(lines: list[str], kinds: list[str]) -> list[str]:
    """Treat a "-- " signature below the last quote as blank, so that a reply quoted on top
    of the writer's signature ("text / > quote / -- / sig") still has a trailing quote."""
    last_q = max((i for i, k in enumerate(kinds) if k == "q"), default=-1)
    if last_q < 0:
        return kinds
    for i in range(last_q + 1, len(lines)):
        if kinds[i] == "t":
            if _SIG_DELIM_RE.match(lines[i]) and sum(k == "t" for k in kinds[i:]) <= 15:
                return kinds[:i] + ["b"] * (len(kinds) - i)
            return kinds
    return kinds


def _mobile_cut(lines: list[str], kinds: list[str], limit: int) -> int | None:
    """Mobile clients write "Sent from my iPhone" and then paste the quote without header."""
    for i in range(limit):
        if kinds[i] == "t" and P.is_mobile_footer(clean(lines[i])):
            if any(k == "t" for k in kinds[i + 1:limit]):
                return i + 1
            return None
    return None


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


def _strip_blank_edges(lines: list[str]) -> list[str]:
    a, b = 0, len(lines)
    while a < b and not clean(lines[a]):
        a += 1
    while b > a and not clean(lines[b - 1]):
        b -= 1
    return lines[a:b]


def _runs(kinds: list[str], start: int) -> list[tuple[str, int, int]]:
    """Runs of quoted ('q') and unquoted ('t') lines from ``start``, blank lines ignored:
    (kind, first line, end) with the run's trailing blanks left out."""
    runs: list[tuple[str, int, int]] = []
    i = start
    while i < len(kinds):
        if kinds[i] == "b":
            i += 1
            continue
        kind, j = kinds[i], i
        while j < len(kinds) and kinds[j] in (kind, "b"):
            j += 1
        end = j
        while end > i and kinds[end - 1] == "b":
            end -= 1
        runs.append((kind, i, end))
        i = j
    return runs


def _rejoin_broken_quote_lines(lines: list[str], kinds: list[str]) -> list[str]:
    """``kinds`` with the tails of quoted lines that a client re-wrapped without the '>' marked
    quoted: a line right under a quoted line that stops mid-sentence and goes on in lower
    case ("> Nullam pharetra d" / "ignissim odio?"), and a line or two wedged between quoted
    lines with no blank line on either side."""
    out = list(kinds)
    for i in range(1, len(lines)):
        if out[i] != "t" or out[i - 1] != "q":
            continue
        above = split_quote(lines[i - 1])[1].rstrip()
        ends_a_sentence = above.endswith((".", "!", "?", ":", ";"))
        if above and not ends_a_sentence and clean(lines[i])[:1].islower():
            out[i] = "q"
            continue
        end = i
        while end < len(out) and end < i + 2 and out[end] == "t":
            end += 1
        if end < len(out) and out[end] == "q":
            out[i:end] = ["q"] * (end - i)
    return out


def _inline_answers_end(lines: list[str], kinds: list[str], start: int) -> int | None:
    """End of the writer's last answer when the quote below an attribution is interleaved
    with answers ("> question / answer / > question / answer"), else None.

    An answer is unquoted text with quoted text below it; the text after the last quote counts
    once there was an answer before it. Text that opens another quote header ("On ... wrote:")
    ends the answers: what follows is older history.
    """
    runs = _runs(_rejoin_broken_quote_lines(lines, kinds), start)
    if len(runs) < 3 or runs[0][0] != "q":
        return None
    end: int | None = None
    for n, (kind, first, last) in enumerate(runs):
        if kind != "t":
            continue
        older = find_header(lines, first, top_level_only=True, stop=last)
        if older is not None:
            if older.start > first and end is not None:
                end = older.start
            break
        if n + 1 < len(runs) or end is not None:
            end = last
    return end


def split_reply(text: str) -> tuple[str, str]:
    """Return ``(new_text, quoted_text)`` for a plain-text reply.

    The cut is at the first quote header (attribution line, "Original Message" marker,
    Outlook header block, ...) or at a trailing block of ``>`` quotes.  Quotes followed by
    the writer's own text (inline replies) are kept.  When the body *starts* with a header
    (bottom-posting, or a plain forward), the text after the header and its quote is used.
    """
    try:
        return _split_reply(normalize_newlines(text or ""), 0)
    except Exception:  # never let a heuristic take the pipeline down
        logger.exception("split_reply failed")
        return (text or "").strip(), ""


def _split_reply(text: str, level: int) -> tuple[str, str]:
    all_lines = text.split("\n")
    lines = all_lines[:MAX_LINES]
    overflow = all_lines[MAX_LINES:]
    kinds = _classify(lines)

    header: HeaderSpan | None = first_header(text, top_level_only=True)
    candidates: list[int] = []
    if header is not None:
        candidates.append(header.start)
    tq = _trailing_quote_start(_mask_signature_after_quotes(lines, kinds))
    if tq is not None:
        candidates.append(_with_attribution(lines, kinds, tq))
    limit = min(candidates) if candidates else len(lines)
    mc = _mobile_cut(lines, kinds, limit)
    if mc is not None:
        candidates.append(mc)

    if not candidates:
        return _join(_strip_blank_edges(all_lines)), ""

    cut = min(candidates)
    if header is not None and cut == header.start and header.kind == "attribution":
        answered = _inline_answers_end(lines, kinds, header.end)
        if answered is not None:
            # An inline reply: the writer's answers sit between the quoted questions, so
            # the new text runs to the last answer; what follows it is still quoted.
            later = find_header(lines, answered, top_level_only=True)
            after = [c for c in candidates if c >= answered]
            if later is not None:
                after.append(later.start)
            cut = min(after, default=len(lines))
    before = _strip_blank_edges(lines[:cut])
    if any(k == "t" for k in _classify(before)) or level >= 3:
        return _join(before), _join(lines[cut:] + overflow)

    # Nothing of our own above the cut.
    if header is not None and cut == header.start:
        # Bottom-posting or a forward without a note: skip the header and any quote block
        # right below it, and look for new text after that.
        j = header.end
        while j < len(lines) and kinds[j] in ("b", "q"):
            j += 1
        if j < len(lines):
            new, quoted = _split_reply("\n".join(lines[j:] + overflow), level + 1)
            if new:
                prefix = _join(lines[:j])
                return new, (prefix + ("\n" + quoted if quoted else "")).strip("\n")
    # Only quotes: nothing new was written.
    return "", _join(lines + overflow)


def drop_inline_quotes(text: str) -> tuple[str, str]:
    """Split ``text`` into the writer's own lines and the lines they quoted in between.

    ``split_reply`` keeps the quotes of an inline reply in the new text (reply trimmers do, to
    keep the answers readable); a customer's own words are the answers, so the quoted
    questions, and the attribution line above them ("On ... wrote:"), go with the quote.
    """
    lines = normalize_newlines(text or "").split("\n")
    kinds = _rejoin_broken_quote_lines(lines, _classify(lines))
    if "q" not in kinds:
        return (text or "").strip("\n"), ""
    quoted = [k == "q" for k in kinds]
    for i, kind in enumerate(kinds):
        if kind != "t":
            continue
        span = find_header(lines, i, top_level_only=True, stop=i + 1)
        if span is None or span.kind != "attribution":
            continue
        below = next((j for j in range(span.end, len(lines)) if kinds[j] != "b"), None)
        if below is not None and kinds[below] == "q":
            quoted[i:span.end] = [True] * (span.end - i)
    kept: list[str] = []
    dropped: list[str] = []
    for line, is_quoted in zip(lines, quoted, strict=True):
        target = dropped if is_quoted else kept
        # One blank line where quoted lines were taken out between two paragraphs.
        if not clean(line) and (not target or not clean(target[-1])):
            continue
        target.append(line)
    return _join(_strip_blank_edges(kept)), _join(_strip_blank_edges(dropped))
