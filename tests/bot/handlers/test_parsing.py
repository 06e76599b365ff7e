"""How /crm reads customer references and times."""

from __future__ import annotations

from bot.handlers.commands import split_customer, split_when


def test_parsing_customer_references_and_times():
    assert split_customer('"Acme Corp" hello there') == ("Acme Corp", "hello there")
    assert split_customer("Acme Corp: hello there") == ("Acme Corp", "hello there")
    assert split_customer("acme.com hello") == ("acme.com", "hello")
    assert split_customer("acme called at 10:30") == ("acme", "called at 10:30")
    assert split_when("tomorrow 9am send the quote", "UTC") == ("tomorrow 9am", "send the quote")
    assert split_when("next friday: review", "UTC") == ("next friday", "review")
    assert split_when("in 3 days", "UTC") == ("in 3 days", "")
