"""split_signature: delimiters, mobile footers, disclaimers, hand-typed sign-offs."""

from __future__ import annotations

import pytest

from bot.mail.parse import split_signature


def test_dash_delimiter() -> None:
    body, sig = split_signature("Please call me.\n\n-- \nJane Roe\nClient Ltd\n")
    assert body == "Please call me."
    assert sig == "-- \nJane Roe\nClient Ltd"


@pytest.mark.parametrize(
    "footer",
    ["Sent from my iPhone", "Envoyé de mon iPhone", "Von meinem iPhone gesendet",
     "Enviado desde mi Samsung Galaxy", "Get Outlook for Android", "Inviato da iPhone",
     "Verzonden met BlackBerry Work", "Skickat från min iPhone", "נשלח מה-iPhone שלי",
     "أرسلت من هاتفي", "ส่งจาก iPhone ของฉัน", "Sent from Yahoo Mail for Android",
     "Sent via Superhuman", "Sent with Proton Mail secure email.", "Sent from Mail for Windows"],
)
def test_mobile_footers(footer: str) -> None:
    assert split_signature(f"On my way.\n\n{footer}\n") == ("On my way.", footer)


@pytest.mark.parametrize(
    "last", ["Sent from the warehouse this morning.", "Sent on Monday, as agreed.",
             "Sent by the courier yesterday."],
)
def test_a_sentence_that_starts_like_a_footer_is_text(last: str) -> None:
    text = f"Your parcel is on its way.\n\n{last}\n"
    assert split_signature(text) == (text.strip(), "")


def test_sign_off_name_title_phone() -> None:
    text = ("The shipment left today.\n\nKind regards,\n\nJane Roe\nHead of Logistics\n"
            "Client Ltd | +44 20 7946 0000\nwww.client.example\n")
    body, sig = split_signature(text)
    assert body == "The shipment left today."
    assert sig.startswith("Kind regards,") and sig.endswith("www.client.example")


def test_name_matching_sender() -> None:
    body, sig = split_signature("Sounds good, see you then.\n\nBert\n", sender="Meyers, Bert")
    assert (body, sig) == ("Sounds good, see you then.", "Bert")


def test_german_sign_off() -> None:
    body, sig = split_signature("Die Ware ist da.\n\nMit freundlichen Grüßen\nHans Müller\n")
    assert body == "Die Ware ist da."
    assert sig == "Mit freundlichen Grüßen\nHans Müller"


def test_disclaimer_removed() -> None:
    text = ("Invoice attached.\n\nJane\n\n"
            "CONFIDENTIALITY NOTICE: This e-mail is intended only for the addressee and may "
            "contain privileged information. If you have received this e-mail in error, "
            "please delete it.\n")
    body, sig = split_signature(text)
    assert body == "Invoice attached."
    assert "CONFIDENTIALITY NOTICE" in sig


@pytest.mark.parametrize(
    "text",
    [
        "Please call Kim.",
        "This was completed.\n\nThanks",  # a bare sign-off is part of the message
        "Meeting moved to 3pm.\n\nThank you!",
        "Ha\tVicki\nMara\tSue\nWong\tMichael",  # a table of names
        "Agenda\n\nProtocol Document and Data Copy Instructions\n\nCertification Document",
        "Love to hear more.\nP.S. Call me tomorrow!",
        # A short last sentence in a script without capitals is not a lone name.
        "Thanks.\n\n我们明天发货",
        "Thanks.\n\n내일발송합니다",
        "Thanks.\n\nส่งจากโกดังพรุ่งนี้",
        "Thanks.\n\nנשלח מחר את ההזמנה",
    ],
)
def test_no_false_signature(text: str) -> None:
    assert split_signature(text) == (text, "")


@pytest.mark.parametrize("name", ["王小明", "김민수", "ジョン・スミス", "สมชาย", "דנה", "أحمد"])
def test_lone_name_in_scripts_without_capitals(name: str) -> None:
    assert split_signature(f"Thanks for the update.\n\n{name}") == ("Thanks for the update.", name)


def test_infer_false_keeps_hand_typed_sign_off() -> None:
    text = "Done.\n\nThanks,\nBob\n\n-- \nBob Builder | Builder Inc"
    assert split_signature(text, infer=False)[0] == "Done.\n\nThanks,\nBob"
    assert split_signature(text)[0] == "Done."


def test_outlook_links_and_logo_placeholders_are_signature_lines() -> None:
    sig = ("Cordiali saluti,\n\nSofia Rossi\nResponsabile Acquisti\n"
           "[cid:image001.png@01D7D48A.5B3C2E10]\n"
           "Northwind Italia S.r.l. | Via Roma 12, 20121 Milano\n"
           "Tel. +39 02 5550 1234 | Cell. +39 333 555 0101\n"
           "www.northwind.example<http://www.northwind.example/> | "
           "LinkedIn<https://www.linkedin.com/company/northwind-example>")
    assert split_signature(f"Va bene martedì.\n\n{sig}") == ("Va bene martedì.", sig)


def test_a_capitalised_line_that_ends_a_wrapped_paragraph_is_not_a_signature() -> None:
    body = ("Could you ask whether the Berlin office can join the contract? 25 people start in\n"
            "February.")
    assert split_signature(f"{body}\n\nInes", sender="Jonas Weber <j@x.example>") == (
        body, "Ines")


def test_every_disclaimer_pattern_branch_has_a_word_of_the_quick_check() -> None:
    """The substring check in front of the disclaimer pattern must never hide a branch."""
    from bot.mail import patterns as P

    branches, depth, current = [], 0, ""
    for ch in P.DISCLAIMER_RE.pattern:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "|" and depth == 0:
            branches.append(current)
            current = ""
        else:
            current += ch
    branches.append(current)
    assert len(branches) > 15
    for branch in branches:
        assert any(word in branch.lower() for word in P.DISCLAIMER_WORDS), branch
