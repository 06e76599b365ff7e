"""Signed link tokens: what one secret signs, only that secret verifies, unaltered."""

from __future__ import annotations

from crm.services import signing


def test_a_token_gives_back_its_payload_and_nothing_else_verifies():
    token = signing.sign("team secret", "open:7:42")
    assert signing.verify("team secret", token) == "open:7:42"
    assert signing.verify("another secret", token) is None
    flipped = token[:3] + ("A" if token[3] != "A" else "B") + token[4:]
    assert signing.verify("team secret", flipped) is None
    for garbage in ("", "!!", "a", token[:-5]):
        assert signing.verify("team secret", garbage) is None
