"""html_to_text: HTML mail as the plain lines the quote, signature and forward rules read."""

from __future__ import annotations

from bot.mail.text import html_to_text


def test_block_per_line_html_gives_one_blank_line_between_paragraphs() -> None:
    html = ("<div>Hi</div><div><br></div><div><br></div><p class=MsoNormal>&nbsp;</p>"
            "<blockquote><div>a</div><div><br></div><div><br></div><div>b</div></blockquote>")
    assert html_to_text(html) == "Hi\n\n> a\n>\n> b"


def test_address_links_read_as_the_address_and_markdown_escapes_are_dropped() -> None:
    html = ('<p>Jane &lt;<a href="mailto:jane@client.example">jane@client.example</a>&gt;</p>'
            "<p>1. Dezember 2021 um 10:12</p><p>- minus</p>")
    assert html_to_text(html) == (
        "Jane <jane@client.example>\n\n1. Dezember 2021 um 10:12\n\n- minus"
    )
