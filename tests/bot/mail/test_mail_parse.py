"""parse_email on hand-built messages: headers, bodies, charsets, forwards, robustness."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from bot.mail.parse import Address, ParsedEmail, parse_email, strip_subject_prefix

INTERNAL = ["ourco.com"]


def _msg(body: str = "Hello", *, subject: str = "Question",
         sender: str = "Jane Roe <Jane@Client.example>", **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "Support <support@ourco.com>"
    m["Subject"] = subject
    m["Date"] = "Tue, 02 Nov 2021 09:26:50 +0100"
    m["Message-ID"] = "<abc@client.example>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


# --------------------------------------------------------------------------- subjects
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Re: Invoice 42", "Invoice 42"),
        ("RE: Fwd: AW: WG: Invoice 42", "Invoice 42"),
        ("TR: RV: SV: VS: Odp: Rif: Invoice", "Invoice"),
        ("[EXT] Re: Invoice", "Invoice"),
        ("Re[2]: Invoice", "Invoice"),
        ("Fw: re: FWD: invoice", "invoice"),
        ("Réponse à votre demande", "Réponse à votre demande"),
        ("إعادة توجيه: رد: Invoice", "Invoice"),
        ("העבר: השב: Invoice", "Invoice"),
        ("ส่งต่อ: ตอบกลับ: Invoice", "Invoice"),
        ("전달: 회신: Invoice", "Invoice"),
        ("Reminder: renewal", "Reminder: renewal"),
        ("  ", ""),
    ],
)
def test_strip_subject_prefix(raw: str, clean: str) -> None:
    assert strip_subject_prefix(raw) == clean


# --------------------------------------------------------------------------- headers
def test_basic_headers_and_json_shape() -> None:
    m = _msg("Can you send the quote?\n", subject="Re: Quote", In_Reply_To="<prev@ourco.com>",
             References="<a@x> <prev@ourco.com>", Cc="Bob <BOB@client.example>")
    p = parse_email(m.as_bytes())
    assert p.from_ == Address("Jane Roe", "jane@client.example")
    assert p.to == [Address("Support", "support@ourco.com")]
    assert p.cc == [Address("Bob", "bob@client.example")]
    assert p.date == datetime(2021, 11, 2, 8, 26, 50, tzinfo=UTC)
    assert p.subject == "Quote"
    assert p.message_id == "abc@client.example"
    assert p.in_reply_to == "prev@ourco.com"
    assert p.references == ["a@x", "prev@ourco.com"]
    assert p.new_text == "Can you send the quote?"
    assert not p.forwarded and p.original_sender is None and p.quarantine_reason is None
    j = p.to_json()
    assert set(j) == {
        "forwarded", "original_sender", "forwarded_by", "from", "to", "cc", "date", "subject",
        "new_text", "quoted_text", "signature", "message_id", "in_reply_to", "references",
        "auto_reply", "auto_reason", "list_mail", "attachments", "forward_note", "truncated",
        "problems", "quarantine_reason",
    }
    assert j["date"] == "2021-11-02T08:26:50+00:00"
    assert j["from"] == {"name": "Jane Roe", "address": "jane@client.example"}


def test_reply_is_split_into_new_quoted_and_signature() -> None:
    body = (
        "Yes, Thursday works for us.\n\n"
        "Best regards,\nJane Roe\nHead of Purchasing, Client Ltd\n+44 20 7946 0000\n\n"
        "On Mon, 1 Nov 2021 at 10:00, Alice Smith <alice@ourco.com> wrote:\n"
        "> Would Thursday work for a call?\n"
    )
    p = parse_email(_msg(body, subject="Re: Call").as_bytes(), internal_domains=INTERNAL)
    assert p.new_text == "Yes, Thursday works for us."
    assert p.signature.startswith("Best regards,")
    assert "+44 20 7946 0000" in p.signature
    assert p.quoted_text.startswith("On Mon, 1 Nov 2021")
    assert not p.forwarded


# --------------------------------------------------------------------------- forwards
GMAIL_FORWARD = (
    "Hi team, can someone pick this up?\n\n"
    "Thanks,\nAlice Smith\nSupport lead, OurCo\nalice@ourco.com | +1 555 0100\n\n"
    "---------- Forwarded message ---------\n"
    "From: John Doe <John.Doe@acme.example>\n"
    "Date: Wed, Oct 27, 2021 at 9:31 AM\n"
    "Subject: Broken invoice\n"
    "To: Alice Smith <alice@ourco.com>\n\n"
    "Hello, the invoice total is wrong.\nPlease fix it.\n\n"
    "John Doe\nAcme Corp\n+1 555 0199\n"
)


def test_gmail_forward_with_staff_note_and_internal_signature() -> None:
    m = _msg(GMAIL_FORWARD, subject="Fwd: Broken invoice", sender="Alice Smith <alice@ourco.com>")
    p = parse_email(m.as_bytes(), internal_domains=INTERNAL)
    assert p.forwarded
    assert p.original_sender == Address("John Doe", "john.doe@acme.example")
    assert p.forwarded_by == Address("Alice Smith", "alice@ourco.com")
    assert p.new_text == "Hello, the invoice total is wrong.\nPlease fix it."
    assert "Acme Corp" in p.signature
    assert p.forward_note == "Hi team, can someone pick this up?"
    assert p.subject == "Broken invoice"


def test_forward_detected_from_body_even_without_fwd_subject() -> None:
    m = _msg(GMAIL_FORWARD, subject="customer issue", sender="alice@ourco.com")
    p = parse_email(m.as_bytes(), internal_domains=INTERNAL)
    assert p.forwarded and p.original_sender.address == "john.doe@acme.example"


def test_outlook_forward_in_german() -> None:
    body = (
        "Bitte übernehmen.\n\n"
        "________________________________\n"
        "Von: Müller, Hans <hans.mueller@kunde.example>\n"
        "Gesendet: Donnerstag, 28. Oktober 2021 12:46\n"
        "An: Alice Smith <alice@ourco.com>\n"
        "Betreff: Lieferung verspätet\n\n"
        "Guten Tag,\nunsere Lieferung ist noch nicht angekommen.\n"
    )
    m = _msg(body, subject="WG: Lieferung verspätet", sender="alice@ourco.com")
    p = parse_email(m.as_bytes(), internal_domains=INTERNAL)
    assert p.forwarded
    assert p.original_sender == Address("Müller, Hans", "hans.mueller@kunde.example")
    assert "unsere Lieferung ist noch nicht angekommen." in p.new_text
    assert p.forward_note == "Bitte übernehmen."


@pytest.mark.parametrize(
    "header",
    [
        # Gmail in Hebrew: bidirectional marks around the marker, the name and the address.
        "---------- \u202bהודעה שהועברה\u202c ---------\n"
        "מאת: \u202aCarla Cliente\u202c <\u202acarla@client.example\u202c>\n"
        "Date: \u202bיום ב׳, 23 בנוב׳ 2026 ב-8:15\u202c\nSubject: Order\nTo: <sam@ourco.com>",
        # Outlook in Arabic and in Thai.
        "________________________________\nمن: Carla Cliente <carla@client.example>\n"
        "تم الإرسال: الاثنين، 23 نوفمبر 2026 08:15 ص\nإلى: Sam <sam@ourco.com>\nالموضوع: Order",
        "________________________________\nจาก: Carla Cliente <carla@client.example>\n"
        "ส่ง: 23 พฤศจิกายน 2026 8:15\nถึง: Sam <sam@ourco.com>\nเรื่อง: Order",
    ],
)
def test_forward_headers_in_right_to_left_and_other_scripts(header: str) -> None:
    m = _msg(f"See below.\n\n{header}\n\nThe order arrived damaged.", subject="Fwd: Order",
             sender="Sam Staff <sam@ourco.com>")
    p = parse_email(m.as_bytes(), internal_domains=INTERNAL)
    assert p.forwarded
    assert p.original_sender == Address("Carla Cliente", "carla@client.example")
    assert p.new_text == "The order arrived damaged."


def test_outlook_block_with_reply_subject_is_a_reply() -> None:
    body = (
        "That works.\n\n"
        "From: Alice Smith <alice@ourco.com>\nSent: Monday, 1 November 2021 10:00\n"
        "To: Jane Roe <jane@client.example>\nSubject: Call\n\nThursday?\n"
    )
    p = parse_email(_msg(body, subject="RE: Call").as_bytes(), internal_domains=INTERNAL)
    assert not p.forwarded
    assert p.new_text == "That works."
    assert p.quoted_text.startswith("From: Alice Smith")


def test_external_sender_quoting_staff_is_not_a_forward() -> None:
    body = (
        "Fine by me.\n\n"
        "From: Alice Smith <alice@ourco.com>\nSent: Monday, 1 November 2021 10:00\n"
        "To: Jane Roe <jane@client.example>\nSubject: Call\n\nThursday?\n"
    )
    p = parse_email(_msg(body, subject="Call").as_bytes(), internal_domains=INTERNAL)
    assert not p.forwarded
    assert p.new_text == "Fine by me."


def test_forward_as_message_rfc822_attachment() -> None:
    inner = _msg("My order #123 never arrived.\n\nRegards,\nPeter Pan\n", subject="Order 123",
                 sender="Peter Pan <peter@neverland.example>")
    outer = EmailMessage()
    outer["From"] = "Alice Smith <alice@ourco.com>"
    outer["To"] = "support@ourco.com"
    outer["Subject"] = "Fwd: Order 123"
    outer.set_content("See attached, please handle.\n")
    outer.add_attachment(inner)
    p = parse_email(outer.as_bytes(), internal_domains=INTERNAL)
    assert p.forwarded
    assert p.original_sender == Address("Peter Pan", "peter@neverland.example")
    assert p.forwarded_by.address == "alice@ourco.com"
    assert p.new_text == "My order #123 never arrived."
    assert p.forward_note == "See attached, please handle."
    assert [a.content_type for a in p.attachments] == ["message/rfc822"]
    assert p.attachments[0].size > 0


def test_forward_of_forward_innermost_external_sender_wins() -> None:
    body = (
        "FYI\n\n"
        "---------- Forwarded message ---------\n"
        "From: Bob Staff <bob@eu.ourco.com>\n"
        "Date: Tue, 2 Nov 2021 at 08:00\n"
        "Subject: Fwd: Refund\n"
        "To: Alice Smith <alice@ourco.com>\n\n"
        "Can you take this one?\n\n"
        "---------- Forwarded message ---------\n"
        "From: Carla Client <carla@customer.example>\n"
        "Date: Mon, 1 Nov 2021 at 17:00\n"
        "Subject: Refund\n"
        "To: Bob Staff <bob@eu.ourco.com>\n\n"
        "I would like a refund for order 77.\n"
    )
    m = _msg(body, subject="Fwd: Fwd: Refund", sender="alice@ourco.com")
    p = parse_email(m.as_bytes(), internal_domains=INTERNAL)
    assert p.forwarded
    # bob@eu.ourco.com is a subdomain of an internal domain: never the original sender.
    assert p.original_sender == Address("Carla Client", "carla@customer.example")
    assert p.new_text == "I would like a refund for order 77."
    # Each forwarder's note is kept, the ones in the middle with their name.
    assert p.forward_note == "FYI\n\nBob Staff <bob@eu.ourco.com>: Can you take this one?"


def test_forward_only_internal_senders_has_no_original_sender() -> None:
    body = (
        "---------- Forwarded message ---------\n"
        "From: Bob Staff <bob@ourco.com>\nDate: Tue, 2 Nov 2021\nSubject: Lunch\n"
        "To: alice@ourco.com\n\nPizza?\n"
    )
    p = parse_email(_msg(body, sender="alice@ourco.com").as_bytes(), internal_domains=INTERNAL)
    assert p.forwarded and p.original_sender is None


def test_reply_to_evidence_for_unparseable_forward() -> None:
    m = _msg("see the customer's message in the ticket", subject="Fwd: help",
             sender="alice@ourco.com", Reply_To="Dora <dora@client.example>")
    p = parse_email(m.as_bytes(), internal_domains=INTERNAL)
    assert p.forwarded
    assert p.original_sender.address == "dora@client.example"


# --------------------------------------------------------------------------- bodies
def test_html_only_mail() -> None:
    m = EmailMessage()
    m["From"] = "jane@client.example"
    m["Subject"] = "Re: hello"
    m.set_content(
        "<html><body><p>Thanks, that <b>fixed</b> it!</p>"
        "<div class='gmail_quote'><div>On Mon, Nov 1, 2021 at 10:00 AM "
        "Alice &lt;alice@ourco.com&gt; wrote:</div>"
        "<blockquote>Try restarting.</blockquote></div></body></html>",
        subtype="html",
    )
    p = parse_email(m.as_bytes())
    assert p.new_text == "Thanks, that fixed it!"
    assert "Try restarting." in p.quoted_text
    assert "<" not in p.body_text.split("\n")[0]


def test_latin1_bytes_declared_utf8() -> None:
    body = "Grüße aus München, das Café ist geöffnet.\n".encode("latin-1")
    raw = (b"From: Jane <jane@client.example>\r\nSubject: Hallo\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
    p = parse_email(raw)
    assert p.new_text == "Grüße aus München, das Café ist geöffnet."
    assert any("utf-8" in x for x in p.problems)
    assert p.quarantine_reason is None


def test_missing_charset_and_missing_headers() -> None:
    raw = "From: jane@client.example\n\nPrivet: Привет, как дела?\n".encode("cp1251")
    p = parse_email(raw)
    assert "Привет" in p.new_text
    assert p.subject == "" and p.date is None and p.message_id is None
    assert p.quarantine_reason is None


def test_no_from_header_is_quarantined() -> None:
    p = parse_email(b"To: support@ourco.com\nSubject: hi\n\nhello\n")
    assert p.from_ is None
    assert p.quarantine_reason == "no sender address"
    assert "no From header" in p.problems
    assert p.new_text == "hello"


def test_sender_header_used_when_from_missing() -> None:
    p = parse_email(b"Sender: Jane <jane@client.example>\nSubject: hi\n\nhello\n")
    assert p.from_ == Address("Jane", "jane@client.example")
    assert p.quarantine_reason is None
    assert "sender taken from Sender" in p.problems


@pytest.mark.parametrize("raw", [b"", b"\x00\xff\xfe", b"not an email at all", "héllo".encode(),
                                 b"From:\n\n", b"Content-Type: multipart/mixed; boundary=x\n\n--x"])
def test_garbage_never_raises_and_is_quarantined(raw: bytes) -> None:
    p = parse_email(raw)
    assert isinstance(p, ParsedEmail)
    assert p.quarantine_reason


@pytest.mark.parametrize("cut", ["no closing delimiter", "never used"])
def test_broken_multipart_keeps_its_text_and_names_the_defect(cut: str) -> None:
    boundary = "0000000000004c7d9e05d1a2b3c4"
    head = (f"From: Jane Roe <jane@client.example>\nSubject: Order\nMIME-Version: 1.0\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n')
    if cut == "never used":
        raw = head + "Please send the order.\n"
    else:
        raw = head + f"--{boundary}\nContent-Type: text/plain\n\nPlease send the order.\n"
    p = parse_email(raw.encode())
    assert "Please send the order." in p.body_text
    assert p.from_ == Address("Jane Roe", "jane@client.example")
    assert any(x.startswith("MIME defects: ") for x in p.problems)


def test_random_bytes_never_raise() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        data = os.urandom(rnd.randint(0, 2000)) if rnd.random() < 0.5 else (
            b"From: a@b.example\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n"
            + os.urandom(rnd.randint(0, 500)))
        p = parse_email(data)
        assert isinstance(p.to_json(), dict)


def test_unknown_charset_is_decoded_anyway() -> None:
    raw = (b"From: a@b.example\nContent-Type: text/plain; charset=klingon\n\n"
           b"caf\xe9 ol\xe9\n")
    p = parse_email(raw)
    assert p.new_text == "café olé"
    assert any("klingon" in x for x in p.problems)


def test_huge_body_is_truncated() -> None:
    m = _msg("A" * 50 + "\n" + ("line of text\n" * 20_000))
    p = parse_email(m.as_bytes(), max_body_chars=10_000)
    assert p.truncated
    assert len(p.body_text) == 10_000
    assert any("truncated" in x for x in p.problems)


def test_attachments_listed() -> None:
    m = _msg("See attached.")
    m.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="q.pdf")
    p = parse_email(m.as_bytes())
    assert p.attachments[0].name == "q.pdf"
    assert p.attachments[0].content_type == "application/pdf"
    assert p.attachments[0].size == len(b"%PDF-1.4 fake")
    assert p.to_json()["attachments"] == [{"name": "q.pdf", "type": "application/pdf", "size": 13}]



@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_binary_attachments_are_sized_without_being_parsed(newline: bytes) -> None:
    """Base64 bodies that are no text are left out of the MIME parse; their size is kept."""
    m = _msg("See the two files.\n\nJane")
    blob = os.urandom(30_000)
    m.add_attachment(blob, maintype="application", subtype="pdf", filename="offer.pdf")
    m.add_attachment(b"a;b\n1;2\n", maintype="text", subtype="csv", filename="rows.csv")
    inner = _msg("Forwarded as a file.", sender="Bob <bob@client.example>")
    inner.add_attachment(b"\x89PNG" * 500, maintype="image", subtype="png", filename="logo.png")
    m.add_attachment(inner)
    raw = m.as_bytes().replace(b"\n", newline)
    p = parse_email(raw)
    assert [(a.name, a.content_type, a.size) for a in p.attachments][:2] == [
        ("offer.pdf", "application/pdf", 30_000), ("rows.csv", "text/csv", 8)]
    assert p.attachments[2].content_type == "message/rfc822"
    # The attached message is read too (a forward as an attachment), its logo sized as well.
    assert p.forwarded and p.new_text == "Forwarded as a file." and not p.problems
    assert p.forward_note == "See the two files."


def test_a_broken_base64_attachment_is_read_the_standard_way() -> None:
    m = _msg("See attached.")
    m.add_attachment(b"12345", maintype="application", subtype="pdf", filename="x.pdf")
    raw = m.as_bytes().replace(b"MTIzNDU=", b"MTIzND*U")
    p = parse_email(raw)
    assert [a.name for a in p.attachments] == ["x.pdf"] and p.new_text == "See attached."


def test_folded_plain_headers_unfold_and_address_lists_parse_strictly() -> None:
    raw = (b"From: Jane Roe <jane@client.example>\r\n"
           b"To: support@ourco.com <support@ourco.com>,\r\n sales@ourco.com <sales@ourco.com>\r\n"
           b"Subject: Re: a subject folded\r\n  over two lines\r\n"
           b"Message-ID:\r\n <folded@client.example>\r\n\r\nHello\r\n")
    p = parse_email(raw)
    assert p.subject == "a subject folded over two lines"
    assert p.message_id == "folded@client.example"
    # "x@y <x@y>" is one address each; a lenient split would give four.
    assert p.to == [Address("", "support@ourco.com"), Address("", "sales@ourco.com")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("John Q.  Public <John.Public@Client.Example>, o'neil@client.example",
         [Address("John Q. Public", "john.public@client.example"),
          Address("", "o'neil@client.example")]),
        ('"Roe, Jane" <jane@client.example>', [Address("Roe, Jane", "jane@client.example")]),
        ("=?utf-8?q?J=C3=BCrgen?= <j@client.example>", [Address("Jürgen", "j@client.example")]),
        ("Jane (sales) <jane@client.example>", [Address("Jane", "jane@client.example")]),
        # The old form: the name is a comment after the address.
        ("bbb@ddd.example (John X. Doe)", [Address("John X. Doe", "bbb@ddd.example")]),
    ],
)
def test_address_lists(value: str, expected: list[Address]) -> None:
    raw = f"From: a@client.example\r\nCc: {value}\r\n\r\nHello\r\n".encode()
    assert parse_email(raw).cc == expected


def _nested(text: str, boundary: str) -> bytes:
    return (
        f"From: Jane Roe <jane@client.example>\nSubject: Order\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: multipart/alternative; boundary=\"{boundary}-alt\"\n\n"
        f"--{boundary}-alt\nContent-Type: text/plain; charset=utf-8\n\n{text}\n"
        f"--{boundary}-alt\nContent-Type: text/html; charset=utf-8\n\n<p>{text}</p>\n"
        f"--{boundary}-alt--\n"
        f"--{boundary}\nContent-Type: application/pdf; name=a.pdf\n"
        f"Content-Disposition: attachment; filename=a.pdf\nContent-Transfer-Encoding: base64\n\n"
        f"JVBERi0xLjQgZmFrZQ==\n--{boundary}--\n"
    ).encode()


@pytest.mark.parametrize("boundary", ["0000000000004c7d9e05d1a2b3c4", "===============42==",
                                      "simple boundary 1"])
def test_multipart_parts_whatever_the_boundary(boundary: str) -> None:
    # Parsing reuses stock boundary names internally; the result must not depend on them,
    # also when one boundary is a prefix of another and when the text names the boundary.
    for text in ("Please send the order.", f"Please send the order. Ref {boundary} here."):
        p = parse_email(_nested(text, boundary))
        assert p.new_text == text
        assert [(a.name, a.content_type, a.size) for a in p.attachments] == \
            [("a.pdf", "application/pdf", len(b"%PDF-1.4 fake"))]
        assert not any("defect" in x.lower() for x in p.problems)


# --------------------------------------------------------------------------- auto replies
@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ({"Auto_Submitted": "auto-replied"}, "Re: hi"),
        ({"X_Autoreply": "yes"}, "hi"),
        ({"Precedence": "bulk"}, "newsletter"),
        ({"X_Auto_Response_Suppress": "All"}, "hi"),
        ({}, "Out of Office: back Monday"),
        ({}, "Automatische Antwort: Urlaub"),
        ({}, "Réponse automatique : absent"),
    ],
)
def test_auto_reply_detection(headers: dict[str, str], subject: str) -> None:
    assert parse_email(_msg(subject=subject, **headers).as_bytes()).auto_reply


def test_normal_mail_is_not_auto_reply() -> None:
    p = parse_email(_msg(subject="Re: office move", Auto_Submitted="no").as_bytes())
    assert not p.auto_reply


# --------------------------------------------------------------------------- chains, lists
def _chain(middle_note: str) -> bytes:
    body = (
        "Logging this.\n\n---------- Forwarded message ---------\n"
        "From: Bob Miller <bob@client.example>\nDate: Wed, Nov 3, 2021 at 5:40 PM\n"
        "Subject: Fwd: Renewal\nTo: Alice Smith <alice@ourco.com>\n\n"
        f"{middle_note}\n\n---------- Forwarded message ---------\n"
        "From: Carol Jones <carol@client.example>\nDate: Wed, Nov 3, 2021 at 4:55 PM\n"
        "Subject: Renewal\nTo: Bob Miller <bob@client.example>\n\n"
        "Bob, I need a quote for the renewal.\n\nCarol\n"
    )
    return _msg(body, subject="Fwd: Fwd: Renewal", sender="alice@ourco.com").as_bytes()


def test_a_customer_passing_on_a_colleagues_mail_is_not_its_author() -> None:
    p = parse_email(_chain("Hi Alice, see Carol's question below.\n\nBob"),
                    internal_domains=INTERNAL)
    assert p.original_sender == Address("Carol Jones", "carol@client.example")
    assert p.new_text == "Bob, I need a quote for the renewal."
    assert p.forward_note == (
        "Logging this.\n\n"
        "Bob Miller <bob@client.example>: Hi Alice, see Carol's question below."
    )


def test_a_customer_who_wrote_a_message_above_a_forward_is_its_author() -> None:
    own = ("Alice, this is the second time this month. We lost four hours of work and I have\n"
           "to report it to our board on Friday. I expect a written incident report and a\n"
           "credit on the next invoice, otherwise we will look at other providers.")
    p = parse_email(_chain(own), internal_domains=INTERNAL)
    assert p.original_sender == Address("Bob Miller", "bob@client.example")
    assert p.new_text == own


def test_list_digests_and_delivery_reports_are_never_forwards() -> None:
    digest = EmailMessage()
    digest["From"] = "users-request@lists.example"
    digest["To"] = "users@lists.example"
    digest["Subject"] = "Users Digest, Vol 1, Issue 2"
    digest.set_content("Today's Topics:\n\n   1. Import (Dana)\n")
    inner = _msg("Splitting the file fixed it.", sender="Dana <dana@fbi.example>")
    digest.add_attachment(inner)
    digest.replace_header("Content-Type", digest["Content-Type"].replace("mixed", "digest"))
    p = parse_email(digest.as_bytes(), internal_domains=INTERNAL)
    assert not p.forwarded and p.list_mail

    report = _msg("This report relates to a message you sent with the following header fields:"
                  "\n\n  From: Ian <ian@oxy.example>\n  To: SoCal <scr@raves.example>\n"
                  "  Date: Sun, 23 Sep 2001 20:10:55 -0700\n  Subject: yeah\n\n"
                  "Your message cannot be delivered.", sender="postmaster@ucla.example",
                  Return_Path="<>")
    p = parse_email(report.as_bytes(), internal_domains=INTERNAL)
    assert not p.forwarded and p.auto_reply and "empty Return-Path" in p.auto_reason


def test_list_mail_says_why() -> None:
    why = {
        "List-Id: Users <users.lists.example>": "List-Id: Users <users.lists.example>",
        "Precedence: list": "Precedence: list",
        "List-Unsubscribe: <mailto:leave@news.example>": "List-Unsubscribe",
        "Sender: dev-bounces@lists.example": "sent by list software",
    }
    for header, reason in why.items():
        raw = _msg().as_bytes().replace(b"\n\n", f"\n{header}\n\n".encode(), 1)
        p = parse_email(raw)
        assert reason in p.list_mail and not p.auto_reply, header
