"""On the public reply corpora: a thread's keywords come from its own new text, never from the
quoted history or signatures capture strips (skipped when ../shared/corpora is absent)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crm.analytics.topics import Text, extract, keywords
from tests.bot.mail.mail_quality import bench

REPO = Path(__file__).resolve().parents[3]
TRIMMER = REPO.parent / "shared" / "corpora" / "discourse+email_reply_trimmer"

pytestmark = pytest.mark.skipif(not TRIMMER.is_dir(), reason="shared corpora not available")


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[^\W\d_]+", text)}


def _keywords(text: str) -> list[str]:
    counts = extract([Text(1, text)]).get(1, {})
    return keywords(counts, {}, documents=1, top=8)


def test_keywords_come_from_the_threads_own_new_text():
    mail = bench()
    foreign: dict[str, list[str]] = {}  # emails whose keywords hold a word not in the new text
    from_raw: dict[str, list[str]] = {}  # the same, had the whole mail been read
    trimming_missed: set[str] = set()
    for path in sorted((TRIMMER / "emails").iterdir()):
        expected = mail.read_text(TRIMMER / "trimmed" / path.name)
        raw = mail.read_text(path)
        new_text = mail.reply_text(raw)  # what capture stores of the mail
        if mail.collapse(new_text) != mail.collapse(expected):
            trimming_missed.add(path.name)
        allowed = _words(expected)
        for source, text in ((foreign, new_text), (from_raw, raw)):
            outside = [k for k in _keywords(text) if not set(k.split(" ")) <= allowed]
            if outside:
                source[path.name] = outside
    # The check has teeth: read whole, many mails would talk about their quoted history.
    assert len(from_raw) >= 20, from_raw
    # Keywords never bring in words from outside the new text, except where capture's reply
    # trimming itself kept more than the corpus's answer (measured by the mail goals).
    assert set(foreign) <= trimming_missed, {k: foreign[k] for k in set(foreign) - trimming_missed}
