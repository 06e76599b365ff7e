"""Split a message body into the text and its signature (including disclaimers).

Two kinds of evidence, applied in this order:

1. *Marked* signatures: the "-- " delimiter, "Sent from my iPhone"-style lines, a separator
   line ("____", "====") followed by a short tail, and legal disclaimer paragraphs at the end.
   These are unambiguous and always removed.
2. *Inferred* signatures (``infer=True``): a trailing block of short lines that starts with a
   sign-off ("Thanks,", "Mit freundlichen Grüßen") or with the writer's name, followed only by
   name / title / phone / address lines.  This is what humans type by hand.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from bot.mail import patterns as P
from bot.mail.headers import clean, is_separator

logger = logging.getLogger(__name__)

_DASH_DELIM_RE = re.compile(r"^\s*(?:--|—|–|-- ?-)\s*$")
_PHONE_RE = re.compile(r"(?:\+?\(?\d[\d\s().\-/]{5,}\d)|\bx\s?-?\d{3,5}\b|\*\d{3,5}\b",
                       re.IGNORECASE)
_CONTACT_WORD_RE = re.compile(
    r"\b(?:tel|phone|fax|cell|mobile|mob|direct|office|email|e-mail|web|www|skype|linkedin)\b"
    r"|^[pfmtew]\s*[:.]\s*[\d+(]|https?://|www\.|@",
    re.IGNORECASE,
)
_NAME_PARTICLES = {"van", "von", "de", "der", "den", "da", "di", "du", "del", "la", "le", "bin",
                   "and", "&", "y", "e", "und", "et"}
_MAX_TAIL_LINES = 40
_MAX_SEPARATOR_TAIL = 12
_MAX_BLOCK_LINES = 12


def _words(line: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", line.strip()) if w]


def _is_cjk(ch: str) -> bool:
    """Han, kana or Hangul."""
    o = ord(ch)
    return (0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF
            or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FFFF or 0x1100 <= o <= 0x11FF)


def _is_katakana(word: str) -> bool:
    return all(0x30A0 <= ord(ch) <= 0x30FF for ch in word)


def _is_name_like(line: str) -> bool:
    if "\t" in line.strip():
        return False  # tab-separated columns are table rows, not names
    s = clean(line).rstrip(".,")
    if not s or len(s) > 40 or any(ch.isdigit() for ch in s):
        return False
    if s.endswith(("!", "?", ":", ";")) or re.search(r"[@:_=*#<>|]", s):
        return False
    sign_off = P.SIGN_OFF_LINE_RE.match(line)
    if sign_off and not sign_off.group("name"):
        return False  # "Thanks" is a sign-off, not a name
    words = _words(s)
    if not 1 <= len(words) <= 4:
        return False
    caps = 0
    for w in words:
        w2 = w.strip("\"'()/—–-")
        if not w2:
            continue
        if w2.lower() in _NAME_PARTICLES:
            continue
        first = w2[0]
        if unicodedata.category(first) == "Lo":
            # Scripts without capitals: a name is short. Chinese, Japanese and Korean write
            # a full name in 2-4 characters (katakana spells foreign names out, longer); Thai
            # and Lao put no spaces between words, so a long run is a sentence.
            if len(w2) > (12 if _is_katakana(w2) else 4 if _is_cjk(first) else 14):
                return False
        elif not first.isupper():
            return False
        caps += 1
    return caps >= 1


def _is_initials(line: str) -> bool:
    return bool(re.fullmatch(r"[A-Z]{1,3}\.?", clean(line)))


# Outlook's plain-text rendering of a signature: a link as "text<https://...>" and an inline
# logo as "[cid:image001.png@01D7D48A.5B3C2E10]".
_ANGLE_URL_RE = re.compile(r"<(?:https?|mailto):[^>\s]*>", re.IGNORECASE)
_ITEM_SEPARATORS = frozenset("|·•/–—-")
_IMAGE_PLACEHOLDER_RE = re.compile(r"^\[cid:[^\]\s]+\]$", re.IGNORECASE)


def _is_contact(line: str) -> bool:
    s = _ANGLE_URL_RE.sub("", clean(line))
    if _IMAGE_PLACEHOLDER_RE.match(s):
        return True
    if len(s) > 90:
        return False
    # A phone number is one item however it is spaced, and "|" or "·" between items is no
    # word: "Tel. +39 02 5550 1234 | Cell. +39 333 555 0101" is two items.
    words = [w for w in _words(_PHONE_RE.sub(" 0 ", s)) if w not in _ITEM_SEPARATORS]
    if _CONTACT_WORD_RE.search(s) or _PHONE_RE.search(s):
        return len(words) <= 10
    # Street addresses, zip codes: a few words with digits in them (not a sentence).
    return (sum(ch.isdigit() for ch in s) >= 3 and len(words) <= 8
            and not s.endswith((".", "!", "?")))


def _is_title_like(line: str) -> bool:
    s = clean(line)
    if not s or len(s) > 60 or s.endswith(("?", "!", ":")):
        return False
    if s.endswith(".") and not re.search(r"\b[A-Z][a-z]{0,3}\.$|\b[A-Z]\.$", s):
        return False
    return len(_words(s)) <= 6


def _sig_like(line: str) -> bool:
    return bool(P.SIGN_OFF_LINE_RE.match(line) or _is_name_like(line) or _is_contact(line)
                or _is_title_like(line) or is_separator(clean(line)))


def _sender_tokens(sender: str | None) -> set[str]:
    if not sender:
        return set()
    local = sender.split("<")[0]
    local = re.sub(r"\[mailto:[^\]]*\]|\(.*?\)|[\"']", " ", local)
    toks = {t.casefold() for t in re.findall(r"[^\W\d_]{2,}", local)}
    return toks - {"mailto", "enron", "com", "the"}


def _matches_sender(line: str, tokens: set[str]) -> bool:
    if not tokens:
        return False
    words = {w.casefold() for w in re.findall(r"[^\W\d_]{2,}", clean(line))}
    return bool(words & tokens) and len(_words(line)) <= 6


def _strip_trailing_blanks(lines: list[str]) -> list[str]:
    end = len(lines)
    while end > 0 and not clean(lines[end - 1]):
        end -= 1
    return lines[:end]


def _nonblank(lines: list[str]) -> int:
    return sum(1 for ln in lines if clean(ln))


def _marked_cut(lines: list[str]) -> int | None:
    """Index of a delimiter / mobile signature line that starts the signature."""
    # Non-blank lines after each index, computed once (bodies can be long).
    after = [0] * (len(lines) + 1)
    for i in range(len(lines) - 1, -1, -1):
        after[i] = after[i + 1] + (1 if clean(lines[i]) else 0)
    for i, line in enumerate(lines):
        c = clean(line)
        if not c:
            continue
        tail = after[i + 1]
        if tail > _MAX_TAIL_LINES:
            continue  # too much text follows for anything here to be a signature
        if _DASH_DELIM_RE.match(line) and tail <= _MAX_TAIL_LINES:
            return i
        if P.is_mobile_footer(c) and tail <= _MAX_TAIL_LINES:
            return i
        # A separator ("____") opens a signature when it stands apart from the text (a
        # line right under a heading is an underline) and what follows identifies someone.
        if is_separator(c) and i > 0 and not clean(lines[i - 1]) \
                and tail <= _MAX_SEPARATOR_TAIL \
                and any(_is_name_like(x) or _is_contact(x) for x in lines[i + 1:] if clean(x)):
            return i
    return None


def _paragraphs(lines: list[str]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        if not clean(lines[i]):
            i += 1
            continue
        j = i
        while j < len(lines) and clean(lines[j]):
            j += 1
        out.append((i, j))
        i = j
    return out


def _disclaimer_cut(lines: list[str]) -> int | None:
    paras = _paragraphs(lines)
    cut: int | None = None
    for a, b in reversed(paras[1:]):
        text = " ".join(clean(x) for x in lines[a:b])
        if P.is_disclaimer(text):
            cut = a
            continue
        if b - a <= 3 and all(len(clean(x)) <= 60 for x in lines[a:b]):
            continue  # a short sig paragraph between disclaimers
        break
    return cut


def _inferred_cut(lines: list[str], sender: str | None) -> int | None:
    lines = _strip_trailing_blanks(lines)
    if not lines:
        return None
    # Collect the trailing block of signature-looking lines.
    top = len(lines)
    count = 0
    while top > 0:
        line = lines[top - 1]
        if not clean(line):
            top -= 1
            continue
        if not _sig_like(line) or count >= _MAX_BLOCK_LINES:
            break
        count += 1
        top -= 1
    while top < len(lines) and not clean(lines[top]):
        top += 1
    block = list(range(top, len(lines)))
    tokens = _sender_tokens(sender)

    def has_identity_after(i: int) -> bool:
        # A sign-off alone ("Thanks") is part of the message, not a signature.
        return any(clean(lines[j]) and (_is_name_like(lines[j]) or _is_contact(lines[j])
                                        or _is_initials(lines[j]))
                   for j in range(i + 1, len(lines)))

    # Something of the message must remain above the signature.
    def keeps_text(i: int) -> bool:
        return any(clean(x) for x in lines[:i])

    for i in block:
        m = P.SIGN_OFF_LINE_RE.match(lines[i])
        if m and (m.group("name") or has_identity_after(i)) and keeps_text(i):
            return i
    anchor = next((i for i in block if _matches_sender(lines[i], tokens)
                   and not _is_contact(lines[i])), None)
    if anchor is None:
        # A capitalised line right under prose continues the paragraph ("...would start
        # in\nFebruary."); a signature starts on a line of its own.
        anchor = next((i for i in block if _is_name_like(lines[i]) and not _is_initials(lines[i])
                       and (i > top or not clean(lines[i - 1]))), None)
        if anchor is None:
            return None
        # Without a sign-off or the sender's name, a capitalised line is a signature only
        # when contact/title lines follow it, or when it is a lone first name.
        if _nonblank(lines[anchor + 1:]) == 0 and len(_words(lines[anchor])) > 1:
            return None
    # Lines directly above the anchor in the same paragraph (e.g. a team name) belong to it.
    start = anchor
    while start - 1 >= top and clean(lines[start - 1]) and (
            _is_name_like(lines[start - 1]) or _is_title_like(lines[start - 1])):
        start -= 1
    if start == 0 or not any(clean(x) for x in lines[:start]):
        return None
    return start


def split_signature(text: str, *, sender: str | None = None,
                    infer: bool = True) -> tuple[str, str]:
    """Return ``(body, signature)``.

    ``sender`` (a display name or "Name <address>") helps recognise the name line;
    ``infer=False`` removes only marked signatures and disclaimers and keeps hand-typed
    sign-offs such as "Thanks,\\nBob".
    """
    try:
        lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
        cut = _marked_cut(lines)
        body = lines if cut is None else lines[:cut]
        d = _disclaimer_cut(body)
        if d is not None:
            cut, body = d, body[:d]
        if infer:
            s = _inferred_cut(body, sender)
            if s is not None:
                cut = s
        if cut is None:
            return (text or "").strip("\n").rstrip(), ""
        return ("\n".join(lines[:cut]).strip("\n").rstrip(),
                "\n".join(lines[cut:]).strip("\n").rstrip())
    except Exception:
        logger.exception("split_signature failed")
        return (text or "").strip(), ""
