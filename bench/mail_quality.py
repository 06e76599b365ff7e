"""Score the mail parser on public e-mail test sets.

Usage::

    python bench/mail_quality.py [--corpora DIR] [--show-failures SET]

The corpora (see ``../shared/corpora/README.md``) are read in place, never copied into the
project.  Scores compare our answer with each set's expected answer; "exact" means equal
after collapsing runs of whitespace, as the README defines it.

The project's own cases (``tests/bot/mail/cases/``, hand-written in the formats of common mail
clients, one folder per kind of miss) are scored too: a case is right when every expectation
in ``expected.json`` holds (forward or not, whose words, text kept and text removed, no lead
from list or role mail).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.mail.forward import find_forwarded  # noqa: E402
from bot.mail.ingest import to_incoming  # noqa: E402
from bot.mail.parse import parse_email, split_reply, split_signature  # noqa: E402
from crm.services.mail_capture import CapturePolicy, set_aside_reason  # noqa: E402

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
OWN_CASES = ROOT / "tests" / "bot" / "mail" / "cases"

FORWARD_SET = "crisp-oss+email-forward-parser"
TRIMMER_SET = "discourse+email_reply_trimmer"
REPLY_SET = "crisp-oss+email-reply-parser"
FORGE_SET = "mailgun+forge"

# A staff member's note and signature wrapped around each forward (the realistic case the
# Crisp set lacks): internal addresses must never be taken for the original sender.
STAFF_NOTE = (
    "Hi team, see below\n\n"
    "Alice Smith\n"
    "Support, ourco.com\n"
    "alice@ourco.com\n\n"
)
STAFF_FROM = "Alice Smith <alice@ourco.com>"
INTERNAL = ("ourco.com",)


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


@dataclass
class Score:
    name: str
    right: int = 0
    total: int = 0
    goal: str = ""
    best_existing: str = ""
    failures: list[str] = field(default_factory=list)

    def add(self, ok: bool, label: str) -> None:
        self.total += 1
        if ok:
            self.right += 1
        else:
            self.failures.append(label)


def reply_text(body: str) -> str:
    """What the sender newly wrote, as the reply-trimming sets define it.

    Both reply sets keep hand-typed sign-offs ("Thanks,\\nBob") in the new text and remove
    only quotes and *marked* signatures ("-- ", "Sent from my iPhone"), hence infer=False.
    """
    new, _quoted = split_reply(body)
    return split_signature(new, infer=False)[0]


# --------------------------------------------------------------------------- forward set
def _forward_cases(corpora: Path) -> list[tuple[str, str, str | None, dict]]:
    base = corpora / FORWARD_SET
    cases = json.loads((base / "expected.json").read_text())["cases"]
    out = []
    for name, exp in sorted(cases.items()):
        body = read_text(base / "fixtures" / name)
        subject = None
        if exp.get("subject_file"):
            subject = read_text(base / "fixtures" / exp["subject_file"]).strip()
        out.append((name, body, subject, exp))
    return out


def _forward_ok(exp: dict, forwarded: bool, address: str | None) -> bool:
    if not exp["forwarded"]:
        return not forwarded
    if not forwarded:
        return False
    want = exp.get("from_address")
    if want is None:  # the header carried only a name
        return not address
    return (address or "").lower() == want.lower()


def score_forward_plain(corpora: Path) -> Score:
    s = Score("Crisp forwards (body only)", goal=">= 188/190",
              best_existing="160/178 (email-forward-parser)")
    for name, body, subject, exp in _forward_cases(corpora):
        part = find_forwarded(body, subject=subject)
        addr = part.sender.address if part and part.sender else None
        s.add(_forward_ok(exp, part is not None, addr), name)
    return s


def _wrapped_message(body: str, subject: str | None) -> bytes:
    msg = EmailMessage()
    msg["From"] = STAFF_FROM
    msg["To"] = "support@ourco.com"
    # Without a subject file the case is tested with a neutral subject: the body alone
    # must tell whether it is a forward.
    msg["Subject"] = subject or "Customer question"
    msg["Date"] = "Thu, 28 Oct 2021 12:46:00 +0000"
    msg.set_content(STAFF_NOTE + body)
    return msg.as_bytes()


def score_forward_wrapped(corpora: Path) -> Score:
    s = Score("Crisp forwards + staff note/signature", goal=">= 188/190", best_existing="-")
    for name, body, subject, exp in _forward_cases(corpora):
        parsed = parse_email(_wrapped_message(body, subject), internal_domains=INTERNAL)
        addr = parsed.original_sender.address if parsed.original_sender else None
        ok = _forward_ok(exp, parsed.forwarded, addr)
        if ok and parsed.forwarded:
            by = parsed.forwarded_by
            ok = by is not None and by.address == "alice@ourco.com"
        s.add(ok, name)
    return s


# --------------------------------------------------------------------------- reply sets
def score_trimmer(corpora: Path) -> Score:
    base = corpora / TRIMMER_SET
    s = Score("Discourse reply trimmer (exact new text)", goal=">= 50/64",
              best_existing="33/64 (talon)")
    for path in sorted((base / "emails").iterdir()):
        expected = read_text(base / "trimmed" / path.name)
        got = reply_text(read_text(path))
        s.add(collapse(got) == collapse(expected), path.name)
    return s


def score_crisp_reply(corpora: Path) -> Score:
    base = corpora / REPLY_SET
    exp = json.loads((base / "expected.json").read_text())
    want = collapse(exp["expected_first_fragment"])
    s = Score("Crisp reply parser (first fragment)", goal=">= 22/26",
              best_existing="14/26 (talon)")
    for name in exp["cases"]:
        got = reply_text(read_text(base / "fixtures" / name))
        s.add(collapse(got) == want, name)
    return s


# --------------------------------------------------------------------------- signatures
def _forge_cases(folder: Path) -> list[tuple[str, str, str]]:
    out = []
    for body_path in sorted(folder.glob("*_body")):
        sender_path = body_path.with_name(body_path.name[: -len("_body")] + "_sender")
        sender = read_text(sender_path).strip() if sender_path.exists() else ""
        out.append((body_path.name, read_text(body_path), sender))
    return out


def score_forge(corpora: Path) -> tuple[Score, Score]:
    base = corpora / FORGE_SET / "dataset"
    pos = Score("mailgun forge: signature removed exactly (P)", goal=">= 70/97",
                best_existing="31/97 (talon)")
    for name, raw, sender in _forge_cases(base / "P"):
        lines = raw.replace("\r\n", "\n").split("\n")
        plain = [ln[len("#sig#"):] if ln.startswith("#sig#") else ln for ln in lines]
        want_body = "\n".join(ln for ln in lines if not ln.startswith("#sig#"))
        got_body, _sig = split_signature("\n".join(plain), sender=sender)
        pos.add(collapse(got_body) == collapse(want_body), name)
    neg = Score("mailgun forge: no false removal (N)", goal=">= 93/95",
                best_existing="93/95 (talon)")
    for name, raw, sender in _forge_cases(base / "N"):
        got_body, _sig = split_signature(raw, sender=sender)
        neg.add(collapse(got_body) == collapse(raw), name)
    return pos, neg


# --------------------------------------------------------------------------- own cases
def own_cases() -> dict[str, dict]:
    return json.loads((OWN_CASES / "expected.json").read_text())["cases"]


def check_case(name: str, exp: dict) -> list[str]:
    """What our reading of one of the project's own cases gets wrong ([] when nothing)."""
    raw = (OWN_CASES / name).read_bytes()
    parsed = parse_email(raw, internal_domains=INTERNAL)
    wrong = []
    if parsed.forwarded != exp["forwarded"]:
        wrong.append(f"forwarded is {parsed.forwarded}")
    if "customer" in exp:
        credited = parsed.original_sender if parsed.forwarded else parsed.from_
        address = credited.address if credited else None
        if address != exp["customer"]:
            wrong.append(f"credited to {address}, not {exp['customer']}")
    new_text = collapse(parsed.new_text)
    wrong += [f"new text lost {t!r}" for t in exp.get("has", []) if collapse(t) not in new_text]
    wrong += [f"new text kept {t!r}" for t in exp.get("lacks", []) if t in parsed.new_text]
    if exp.get("no_lead"):
        mail = to_incoming(raw, parsed, source="bench")
        if set_aside_reason(mail, CapturePolicy(internal_domains=INTERNAL)) is None:
            wrong.append("would create a lead")
    return wrong


def score_own_cases(corpora: Path) -> tuple[Score, ...]:
    scores: dict[str, Score] = {}
    for name, exp in own_cases().items():
        kind = name.split("/", 1)[0]
        score = scores.setdefault(kind, Score(f"own cases: {kind.replace('_', ' ')}"))
        wrong = check_case(name, exp)
        score.add(not wrong, f"{name}: {'; '.join(wrong)}")
    for score in scores.values():
        score.goal = f">= {score.total}/{score.total}"
        score.best_existing = "-"
    return tuple(scores.values())


SCORERS: list[Callable[[Path], Score | tuple[Score, ...]]] = [
    score_forward_plain, score_forward_wrapped, score_trimmer, score_crisp_reply, score_forge,
    score_own_cases,
]


def goal_met(score: Score) -> bool:
    m = re.match(r">=\s*(\d+)", score.goal)
    return m is not None and score.right >= int(m.group(1))


def run(corpora: Path) -> list[Score]:
    scores: list[Score] = []
    for fn in SCORERS:
        result = fn(corpora)
        scores.extend(result if isinstance(result, tuple) else (result,))
    return scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--show-failures", action="store_true", help="list failing cases")
    args = ap.parse_args(argv)
    if not args.corpora.is_dir():
        print(f"corpora not found: {args.corpora}", file=sys.stderr)
        return 2
    scores = run(args.corpora)
    w = max(len(s.name) for s in scores)
    print(f"{'set':<{w}}  {'ours':>9}  {'goal':>10}  met  best existing library")
    print("-" * (w + 60))
    for s in scores:
        ours = f"{s.right}/{s.total}"
        print(f"{s.name:<{w}}  {ours:>9}  {s.goal:>10}  {'yes' if goal_met(s) else 'NO ':<3}  "
              f"{s.best_existing}")
        if args.show_failures and s.failures:
            for f in s.failures:
                print(f"    x {f}")
    return 0 if all(goal_met(s) for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
