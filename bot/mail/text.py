"""Bytes -> text: charset decoding with fallbacks, and HTML -> plain text."""

from __future__ import annotations

import codecs
import html as html_lib
import logging
import re

logger = logging.getLogger(__name__)

# Encodings that decode any byte string without error, so "it decoded" proves nothing.
_COMMON_RE = re.compile(
    r"^(?:utf_8|ascii|cp125\d|latin_1|iso8859_\d+|koi8_[ru]|gb2312|gbk|gb18030|big5(?:hkscs)?|"
    r"shift_jis|cp932|euc_jp|iso2022_jp\w*|euc_kr|cp949|cp874|tis_620|mac_cyrillic)$"
)
_PERMISSIVE = {"latin_1", "iso8859_1", "cp1252", "iso8859_15", "cp437", "mac_roman"}


# The characters a charset name is made of (RFC 2978); what follows them is junk ("utf-8\x00",
# "iso-8859-1 (western)") that must not make the part unreadable.
_CHARSET_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'+^_`{}~.:-]+")


def _codec_name(charset: str | None) -> str | None:
    if not charset:
        return None
    m = _CHARSET_NAME_RE.search(charset.strip().strip("\"'"))
    if m is None:
        return None
    cs = m.group(0).lower()
    # Mislabels seen in the wild.
    cs = {"utf8": "utf-8", "unicode-1-1-utf-7": "utf-7", "x-unknown": "", "unknown-8bit": "",
          "ansi_x3.4-1968": "ascii", "default": "", "iso-8859-8-i": "iso-8859-8"}.get(cs, cs)
    if not cs:
        return None
    try:
        return codecs.lookup(cs).name
    except (LookupError, ValueError):
        return None


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode ``data``; return ``(text, problem)`` where problem explains any repair.

    Order: the declared charset (strict), UTF-8 (strict), charset-normalizer's guess, and
    finally cp1252 with replacement characters.
    """
    if not data:
        return "", None
    codec = _codec_name(declared)
    if codec:
        try:
            text = data.decode(codec)
            # A permissive codec "succeeds" on UTF-8 bytes too; prefer UTF-8 when it fits.
            if codec in _PERMISSIVE and _looks_utf8(data):
                return data.decode("utf-8"), f"declared charset {declared} but body is UTF-8"
            return text, None
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        text = data.decode("utf-8")
        return text, (f"declared charset {declared} does not match; decoded as utf-8"
                      if codec and codec != "utf_8" else
                      (f"unknown charset {declared!r}; decoded as utf-8" if declared else None))
    except UnicodeDecodeError:
        pass
    if codec:
        what = f"declared charset {declared} does not match"
    elif declared:
        what = f"unknown charset {declared!r}"
    else:
        what = "no charset declared"
    guess = _guess(data)
    if guess is not None:
        text, enc = guess
        return text, f"{what}; decoded as {enc}"
    text = data.decode("cp1252", errors="replace")
    if "\ufffd" in text:
        return text, f"{what}; undecodable body (characters replaced)"
    return text, f"{what}; decoded as cp1252"


def _looks_utf8(data: bytes) -> bool:
    if all(b < 0x80 for b in data):
        return False
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _guess(data: bytes) -> tuple[str, str] | None:
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:200_000]).best()
        if best is None:
            return None
        enc = best.encoding
        # On short or unusual input the detector can land on EBCDIC or UTF-16; mail text
        # is practically always one of the common encodings, else cp1252 is the best bet.
        if not _COMMON_RE.match(enc):
            return None
        return data.decode(enc, errors="replace"), enc
    except Exception:  # the detector is a best-effort helper
        logger.debug("charset detection failed", exc_info=True)
        return None


# Markdown escapes html2text adds at a line start ("1\\. December", "\\- item"); mail is not
# Markdown, and the backslash would be stored as part of the text.
_MD_ESCAPE_RE = re.compile(r"^([ \t>]*(?:\d+)?)\\([.\-+])", re.MULTILINE)
# A line of nothing but quote markers and (non-breaking) spaces.
_EMPTY_QUOTE_LINE_RE = re.compile(r"^((?:[ \t]*>)*)[ \t\u00a0>]*$")


def _tidy(text: str) -> str:
    """Plain lines from html2text's output: no trailing hard-break spaces, no lines of bare
    (non-breaking) spaces, one blank line between paragraphs, quote levels kept.

    Clients write every line as its own block ("<div>...<br></div>", Outlook's "MsoNormal"
    paragraphs with an &nbsp; paragraph between), which html2text turns into runs of blank
    and space-only lines; header blocks and signatures are only recognisable line by line.
    """
    out: list[str] = []
    for line in _MD_ESCAPE_RE.sub(r"\1\2", text).split("\n"):
        line = line.rstrip(" \t\u00a0")
        m = _EMPTY_QUOTE_LINE_RE.match(line)
        if m is not None:
            line = m.group(1).replace(" ", "").replace("\t", "")
            # A blank line inside a quote stays a (bare) quote marker line; runs collapse.
            if out and out[-1] == line:
                continue
        out.append(line)
    return "\n".join(out).strip()


def html_to_text(html: str) -> str:
    """Render HTML mail as plain text; blockquotes become '> ' quotes."""
    try:
        import html2text

        h = html2text.HTML2Text()
        h.body_width = 0  # do not re-wrap: line structure matters for quote detection
        h.ignore_images = True
        h.ignore_emphasis = True
        h.ignore_tables = True  # layout tables become plain rows instead of markdown grids
        h.single_line_break = False
        h.unicode_snob = True
        h.skip_internal_links = True
        # An address link reads as the address: "[a@x](mailto:a@x)" hides it from the
        # patterns that look for addresses in signatures and forward headers.
        h.ignore_mailto_links = True
        return _tidy(h.handle(html))
    except Exception:
        logger.warning("html2text failed; falling back to tag stripping", exc_info=True)
        text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
        text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>|</h\d>", "\n", text)
        text = re.sub(r"<[^>]+>", " ", text)
        text = html_lib.unescape(text)
        return re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n\s*\n+", "\n\n", text)).strip()
