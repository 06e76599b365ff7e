"""split_reply: quote stripping in several languages and layouts."""

from __future__ import annotations

import pytest

from bot.mail.parse import split_reply

NEW = "Thanks, the new version works."


@pytest.mark.parametrize(
    "header",
    [
        "On Mon, Nov 1, 2021 at 10:00 AM Alice Smith <alice@ourco.com> wrote:",
        "Am 01.11.2021 um 10:00 schrieb Alice Smith <alice@ourco.com>:",
        "Le lun. 1 nov. 2021 à 10:00, Alice Smith <alice@ourco.com> a écrit :",
        "El lun, 1 nov 2021 a las 10:00, Alice Smith (<alice@ourco.com>) escribió:",
        "Il giorno lun 1 nov 2021 alle ore 10:00 Alice Smith <alice@ourco.com> ha scritto:",
        "Op ma 1 nov. 2021 om 10:00 schreef Alice Smith <alice@ourco.com>:",
        "Em seg., 1 de nov. de 2021 às 10:00, Alice Smith <alice@ourco.com> escreveu:",
        "W dniu 01.11.2021 o 10:00 Alice Smith <alice@ourco.com> napisał:",
        "пн, 1 нояб. 2021 г. в 10:00, Alice Smith <alice@ourco.com>:",
        "2021-11-01 10:00 GMT+01:00 Alice Smith <alice@ourco.com>:",
        "-----Original Message-----",
        "-----Ursprüngliche Nachricht-----",
        # Gmail in Hebrew wraps the line and the address in bidirectional marks.
        "\u202bב-1 בנוב׳ 2021 ב-10:00 מאת Alice Smith <\u202aalice@ourco.com\u202c\u200f>:\u202c",
    ],
)
def test_reply_header_languages(header: str) -> None:
    text = f"{NEW}\n\n{header}\n> Please try the new version.\n> Alice\n"
    new, quoted = split_reply(text)
    assert new == NEW
    assert quoted.startswith(header.split(",")[0][:10])


def test_header_wrapped_over_two_lines() -> None:
    text = (f"{NEW}\n\nOn Mon, Nov 1, 2021 at 10:00 AM Alice Smith <\nalice@ourco.com> wrote:\n\n"
            "> quoted\n")
    assert split_reply(text)[0] == NEW


def test_outlook_header_block_in_french() -> None:
    text = (f"{NEW}\n\nDe : Alice Smith <alice@ourco.com>\nEnvoyé : lundi 1 novembre 2021 10:00\n"
            "À : jane@client.example\nObjet : Version\n\nEssayez la nouvelle version.\n")
    new, quoted = split_reply(text)
    assert new == NEW
    assert "Essayez" in quoted


def test_inline_reply_keeps_quotes_followed_by_text() -> None:
    text = "> Can you make Thursday?\n\nYes, 3pm is fine.\n"
    assert split_reply(text)[0] == "> Can you make Thursday?\n\nYes, 3pm is fine."


def test_bottom_posted_reply() -> None:
    text = ("On Mon, Nov 1, 2021 at 10:00 AM Alice <alice@ourco.com> wrote:\n"
            "> Does it work?\n\nYes it does.\n")
    assert split_reply(text)[0] == "Yes it does."


def test_quote_only_has_no_new_text() -> None:
    new, quoted = split_reply("> just a quote\n> more\n")
    assert new == ""
    assert "just a quote" in quoted


def test_mobile_client_quote_without_header() -> None:
    text = f"{NEW}\n\nSent from my iPhone\n\nOriginal text pasted without a header.\n"
    new, quoted = split_reply(text)
    assert new == f"{NEW}\n\nSent from my iPhone"
    assert quoted == "Original text pasted without a header."


def test_a_sentence_like_a_footer_does_not_cut_the_text_below_it() -> None:
    text = f"{NEW}\n\nSent from the warehouse this morning.\n\nTracking number to follow.\n"
    assert split_reply(text) == (text.strip(), "")


@pytest.mark.parametrize("attribution", ["Sam Staff wrote:", "Anna Berg schrieb:"])
def test_a_bare_attribution_above_the_trailing_quote_goes_with_it(attribution: str) -> None:
    new, quoted = split_reply(f"Yes, Tuesday works.\n\n{attribution}\n> Does Tuesday work?\n")
    assert new == "Yes, Tuesday works."
    assert quoted == f"{attribution}\n> Does Tuesday work?"


def test_a_sentence_ending_in_a_colon_above_a_quote_stays_text() -> None:
    text = "Here is what the contract says:\n> Payment within 30 days.\n"
    assert split_reply(text)[0] == "Here is what the contract says:"


def test_plain_text_is_untouched() -> None:
    text = "Line one\n\nOn this day I wrote a lot.\nThe End.\n"
    assert split_reply(text) == ("Line one\n\nOn this day I wrote a lot.\nThe End.", "")


def test_code_fence_lines_are_not_quotes() -> None:
    text = "Look:\n\n```\n> not a quote\n```\n\nDone.\n"
    assert split_reply(text)[0] == text.strip()


# --------------------------------------------------------------------------- inline replies
INLINE = (
    "Hi Alice,\n\nmy answers inline.\n\n"
    "Am 15.11.21 um 17:40 schrieb Alice Smith:\n"
    "> Can we migrate on the weekend?\n\n"
    "Yes, after 18:00 on Friday.\n\n"
    "> Who approves the cut-over?\n\n"
    "Our CIO.\n\n"
    "> Old reports?\n> Alice\n"
)


def test_inline_answers_below_an_attribution_are_new_text() -> None:
    new, quoted = split_reply(INLINE)
    assert new.startswith("Hi Alice,") and new.endswith("Our CIO.")
    assert "Yes, after 18:00 on Friday." in new
    assert quoted == "> Old reports?\n> Alice"


def test_drop_inline_quotes_keeps_the_answers_only() -> None:
    from bot.mail.quotes import drop_inline_quotes

    answers, questions = drop_inline_quotes(split_reply(INLINE)[0])
    assert answers == ("Hi Alice,\n\nmy answers inline.\n\nYes, after 18:00 on Friday.\n\n"
                       "Our CIO.")
    assert questions.startswith("Am 15.11.21 um 17:40 schrieb Alice Smith:\n> Can we migrate")
    assert "> Who approves the cut-over?" in questions


@pytest.mark.parametrize(
    "below",
    [
        # Older history under the quote: no answers.
        "On Mon, 1 Nov 2021 at 10:00, Alice <alice@ourco.com> wrote:\n> Try it.\n\n"
        "On Sun, 31 Oct 2021 at 09:00, Jane <jane@client.example> wrote:\n> It fails.\n",
        # Quoted lines a client re-wrapped without the marker: still the quote.
        "On Mon, 1 Nov 2021 at 10:00, Alice <alice@ourco.com> wrote:\n"
        "> Could you check the invoice for the seats we d\nropped in October?\n>\n"
        "> And the Lisbon\noffice too.\n>\n",
    ],
)
def test_text_under_a_quote_that_answers_nothing_stays_quoted(below: str) -> None:
    assert split_reply(f"{NEW}\n\n{below}")[0] == NEW


# --------------------------------------------------------------------------- header shapes
@pytest.mark.parametrize(
    "lines",
    [
        "From: our side, everything is ready to sign.\nTo: your legal team goes the redline.",
        "An: alle, die für die Schulung zuständig sind:\nVon: unserer Seite kommen acht Leute.",
        "From: the numbers you sent, 3 nodes are enough.\nDate: for the rollout is 10 January.",
    ],
)
def test_lines_that_only_begin_like_header_fields_are_text(lines: str) -> None:
    text = f"Hi Alice,\n\n{lines}\n\nThanks,\nNina\n"
    assert split_reply(text) == (text.strip(), "")


def test_a_header_block_names_someone_or_carries_a_date() -> None:
    text = f"{NEW}\n\nFrom: Alice Smith\nSent: Monday, 1 November 2021 10:00\nTo: Jane\n\nOld."
    assert split_reply(text)[0] == NEW
