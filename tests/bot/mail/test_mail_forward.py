"""find_forwarded on text bodies from different mail clients."""

from __future__ import annotations

import pytest

from bot.mail.parse import Address, find_forwarded

BODY = "Aenean quis diam urna.\nSed nec facilisis tellus."


@pytest.mark.parametrize(
    "header",
    [
        "---------- Forwarded message ---------\nFrom: John Doe <john@acme.example>\n"
        "Date: Wed, Oct 27, 2021 at 9:31 AM\nSubject: Hi\nTo: <b@ourco.com>\n",
        "> Begin forwarded message:\n>\n> From: John Doe <john@acme.example>\n> Subject: Hi\n"
        "> Date: 25 October 2021 at 11:17:21 EEST\n> To: b@ourco.com\n>",
        "-------- Message transféré --------\nSujet : \tHi\nDate : \tWed, 3 Nov 2021 15:51:30\n"
        "De : \tJohn Doe <john@acme.example>\nPour : \tb@ourco.com\n",
        "From: John Doe [mailto:john@acme.example]\nSent: 25 October 2021 11:17\n"
        "To: b@ourco.com\nSubject: Hi\n",
        "   ----- Forwarded Message ----- From: John Doe <john@acme.example>To: "
        "\"b@ourco.com\" <b@ourco.com>Sent: Tuesday, November 2, 2021, 09:26:50 AM GMT+1"
        "Subject: Hi",
        "---------- メッセージを転送 ---------\n送信元：John Doe <john@acme.example>\n"
        "日付：2022年9月19日月曜日 17:55:44 -0400\n件名：Hi\n送信先：b@ourco.com\n",
        "On 28/10/2021 12:46, \"John Doe\" <john@acme.example> wrote:\n",
        # eM Client: fields without colons under its marker.
        "------ Original Message ------\nFrom \"John Doe\" <john@acme.example>\n"
        "To b@ourco.com\nDate 23/11/2026 08:15:00\nSubject Hi\n",
    ],
)
def test_forward_formats(header: str) -> None:
    body = BODY if not header.startswith(">") else "\n".join("> " + x for x in BODY.split("\n"))
    part = find_forwarded(f"{header}\n{body}\n")
    assert part is not None
    assert part.sender == Address("John Doe", "john@acme.example")
    assert "Aenean quis diam urna." in part.body
    assert not part.body.lstrip().startswith(">")


def test_forward_quoted_below_an_unquoted_marker_is_unquoted() -> None:
    # Spark and mutt: the marker at the top level, the whole forwarded message '>'-quoted.
    quoted = "\n".join("> " + x for x in BODY.split("\n"))
    text = (
        "Handle please\n\nBegin forwarded message:\n\n> From: John Doe <john@acme.example>\n"
        f"> Subject: Hi\n> Date: 23 November 2026 at 08:15\n> To: b@ourco.com\n>\n{quoted}\n"
    )
    part = find_forwarded(text)
    assert part is not None and part.sender == Address("John Doe", "john@acme.example")
    assert part.body == BODY
    assert part.note == "Handle please"


@pytest.mark.parametrize(
    "text",
    [
        "-------- Original Message --------\nFrom the team at Acme\nTo all of you: thanks\n",
        "-------- Original Message --------\nFrom what Ann said (ann@x.example) we agree\n"
        "Date the contract to June 1.\n",
        "Begin forwarded message:\n\nFrom what Ann said (ann@x.example) we agree\n"
        "Date the contract to June 1.\n",
    ],
)
def test_sentences_under_a_marker_are_not_header_fields(text: str) -> None:
    # Without colons, only an "Original Message" marker with a From line that is nothing but
    # an address starts a field block.
    part = find_forwarded(text)
    assert part is None or part.sender is None


def test_forwarded_body_starting_with_label_words_is_kept() -> None:
    part = find_forwarded(
        "----- Forwarded Message ----- From: John Doe <john@acme.example>To: b@ourco.com "
        "Subject: Hi\n\nFrom our side, please reply to ann@x.example\nTo be clear, we agree.\n"
    )
    assert part is not None and part.sender == Address("John Doe", "john@acme.example")
    assert part.body == "From our side, please reply to ann@x.example\nTo be clear, we agree."


def test_note_above_forward_is_returned() -> None:
    text = ("Please handle.\n\n---------- Forwarded message ---------\n"
            "From: john@acme.example\nSubject: Hi\n\n" + BODY)
    part = find_forwarded(text)
    assert part.note == "Please handle."
    assert part.sender == Address("", "john@acme.example")
    assert part.subject == "Hi"
    assert part.explicit


def test_reply_attribution_with_angle_quotes_is_not_a_forward() -> None:
    text = ("That's true!\n\n"
            "On Wed, Oct 27, 2021 at 9:31 AM John <john@acme.example> wrote:\n> old\n")
    assert find_forwarded(text) is None


def test_outlook_block_with_reply_subject_is_not_a_forward() -> None:
    text = ("Sure.\n\nFrom: John Doe <john@acme.example>\nSent: Monday\nTo: b@ourco.com\n"
            "Subject: Hi\n\nold text\n")
    assert find_forwarded(text, subject="RE: Hi") is None
    assert find_forwarded(text, subject="FW: Hi") is not None


def test_name_only_sender() -> None:
    text = ("-----Original Message-----\nFrom: John Doe\nSent: 23 July 2022 07:53\n"
            "To: Bessie\nSubject: Hi\n\n" + BODY)
    part = find_forwarded(text)
    assert part.sender == Address("John Doe", "")


def test_plain_text_has_no_forward() -> None:
    assert find_forwarded("Hello,\n\nplease send the report.\n\nThanks, Bob") is None


def test_apple_mail_double_spaced_header_block_is_read_whole() -> None:
    """Apple Mail's HTML gives each field its own block: From, Subject, Date, To."""
    text = ("> Begin forwarded message:\n>\n> From: John Doe <john@acme.example>\n>\n"
            "> Subject: Hi\n>\n> Date: 29 November 2021 at 14:51:09 CET\n>\n"
            "> To: Alice <alice@ourco.com>\n>\n> Cc: Bob <bob@acme.example>\n>\n> " + BODY)
    part = find_forwarded(text)
    assert part is not None and part.sender == Address("John Doe", "john@acme.example")
    assert part.body == BODY.replace("\n", "\n")
