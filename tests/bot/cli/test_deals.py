"""`crmbot deal ...` run in-process, with the follow-ups, log and timeline around a deal."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


def test_deals_followups_log_and_lists(crmbot):
    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")
    code, out, _ = crmbot(
        "deal", "add", "jane@acme.com", "Team plan", "--amount", "12.5k", "--json"
    )
    deal = json.loads(out)
    assert code == 0 and deal["amount"] == "12500.00" and deal["stage"] == "lead"
    assert crmbot("deal", "move", str(deal["id"]), "proposal")[0] == 0
    code, out, _ = crmbot("deal", "list", "--json")
    assert [d["stage"] for d in json.loads(out)] == ["proposal"]
    assert crmbot("deal", "lost", str(deal["id"]), "too", "expensive")[0] == 0
    code, out, _ = crmbot("deal", "list", "--status", "lost", "--json")
    assert json.loads(out)[0]["lost_reason"] == "too expensive"
    code, out, _ = crmbot(
        "log", "jane@acme.com", "Called", "about", "renewal", "--channel", "call", "--json"
    )
    assert json.loads(out)["direction"] == "outbound"
    code, out, _ = crmbot(
        "followup", "add", "jane@acme.com", "tomorrow 9am", "send", "quote", "--json"
    )
    follow_up = json.loads(out)
    assert code == 0 and follow_up["note"] == "send quote"
    code, out, _ = crmbot("followup", "list", "--json")
    assert [f["id"] for f in json.loads(out)] == [follow_up["id"]]
    assert crmbot("followup", "done", str(follow_up["id"]))[0] == 0
    code, out, _ = crmbot("timeline", "jane@acme.com", "--json")
    assert json.loads(out)[0]["body"] == "Called about renewal"
    code, out, _ = crmbot("customer", "show", "jane@acme.com", "--json")
    shown = json.loads(out)["recent_interactions"]
    assert [(i["body"], i["channel"], i["direction"]) for i in shown] == [
        ("Called about renewal", "call", "outbound")
    ]
    code, out, _ = crmbot("customer", "show", "jane@acme.com")
    assert "Called about renewal" in out


def test_ids_too_large_for_the_store_are_a_plain_not_found(crmbot):
    huge = "99999999999999999999"
    for args in (
        ("deal", "move", huge, "won"),
        ("followup", "done", huge),
        ("customer", "show", f"#{huge}"),
    ):
        code, _, err = crmbot(*args)
        assert code == 2 and huge in err and "database" not in err, args
