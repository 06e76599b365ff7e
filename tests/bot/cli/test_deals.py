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
def _stage_changes(db) -> int:
    from sqlmodel import func, select

    from crm.models import DealStageChange

    with db.session() as s:
        return s.exec(select(func.count()).select_from(DealStageChange)).one()


def test_a_new_deal_is_owned_by_the_owner_given_else_the_customers_else_whoever_opens_it(crmbot):
    crmbot("user", "add", "Rita Rep", "--email", "rita@ourco.com", "--role", "rep")
    crmbot("user", "add", "Ray Rep", "--email", "ray@ourco.com", "--role", "rep")
    crmbot("customer", "add", "Owned", "--email", "a@owned.com", "--owner", "rita@ourco.com")
    crmbot("customer", "add", "Unowned", "--email", "b@unowned.com")

    def owner_of(*args: str) -> int | None:
        code, out, err = crmbot(*args, "--json")
        assert code == 0, err
        return json.loads(out)["owner_id"]

    rita, ray = (json.loads(crmbot("user", "list", "--json")[1])[i]["id"] for i in (0, 1))
    # The CLI's admin has no user: the customer's owner, or nobody.
    assert owner_of("deal", "add", "a@owned.com", "Plan A") == rita
    assert owner_of("deal", "add", "b@unowned.com", "Plan B") is None
    assert owner_of("deal", "add", "b@unowned.com", "Plan C", "--owner", "ray@ourco.com") == ray
    # A rep opening a deal on a colleague's customer opens it for the colleague.
    assert owner_of("--as", "ray@ourco.com", "deal", "add", "a@owned.com", "Plan D") == rita
    assert owner_of("--as", "ray@ourco.com", "deal", "add", "b@unowned.com", "Plan E") == ray
    code, out, _ = crmbot("deal", "list", "--owner", "rita@ourco.com", "--json")
    assert sorted(d["title"] for d in json.loads(out)) == ["Plan A", "Plan D"]
    # Follow-ups remind whoever sets them; the CLI's admin sets them for the customer's owner.
    assert owner_of("followup", "add", "a@owned.com", "tomorrow 9am") == rita
    assert owner_of("--as", "ray@ourco.com", "followup", "add", "a@owned.com", "tomorrow") == ray
    code, out, _ = crmbot("followup", "list", "--owner", "rita@ourco.com", "--json")
    assert len(json.loads(out)) == 1


def test_a_won_deal_is_reopened_only_on_purpose_and_won_twice_is_one_change(crmbot, db):
    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")
    deal_id = str(json.loads(crmbot("deal", "add", "jane@acme.com", "Plan", "--json")[1])["id"])
    assert crmbot("deal", "won", deal_id)[0] == 0
    changes = _stage_changes(db)
    code, _, err = crmbot("deal", "won", deal_id)
    assert code == 2 and "already won" in err
    code, _, err = crmbot("deal", "move", deal_id, "proposal")
    assert code == 2 and "would reopen it" in err and "--reopen" in err
    assert len(err.strip().splitlines()) == 1
    assert _stage_changes(db) == changes
    code, out, _ = crmbot("deal", "move", deal_id, "proposal", "--reopen", "--json")
    assert code == 0 and json.loads(out)["status"] == "open"
    assert _stage_changes(db) == changes + 1


def test_currency_must_be_iso_4217_and_a_past_close_date_warns(crmbot):
    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")
    code, _, err = crmbot("deal", "add", "jane@acme.com", "Plan", "--currency", "XYZ")
    assert code == 2 and "ISO 4217" in err
    code, out, err = crmbot("deal", "add", "jane@acme.com", "Plan", "--currency", "chf", "--json")
    assert code == 0 and json.loads(out)["currency"] == "CHF" and err == ""
    code, out, err = crmbot("deal", "add", "jane@acme.com", "Old", "--close", "1999-01-01")
    assert code == 0 and "Opened deal" in out
    assert err.strip() == "warning: The expected close date 1999-01-01 has passed already."


def test_lists_say_when_they_are_cut_and_take_limit_and_all(crmbot, tmp_path):
    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")
    path = tmp_path / "deals.csv"
    path.write_text("customer,title\n" + "".join(f"jane@acme.com,Deal {i}\n" for i in range(60)))
    assert crmbot("import", "deals", str(path))[0] == 0
    code, out, _ = crmbot("deal", "list")
    assert "showing 50 of 60 deals (--limit N or --all for more)" in out
    code, out, _ = crmbot("deal", "list", "--all")
    assert "showing" not in out and "Deal 59" in out
    assert len(json.loads(crmbot("deal", "list", "--json")[1])) == 50
    assert len(json.loads(crmbot("deal", "list", "--limit", "5", "--json")[1])) == 5
    listed = json.loads(crmbot("deal", "list", "--all", "--json")[1])
    assert len(listed) == 60 and set(listed[0]) >= {"id", "title", "stage", "owner_id"}
    for when in ("tomorrow 9am", "tomorrow 10am", "tomorrow 11am"):
        crmbot("followup", "add", "jane@acme.com", when)
    code, out, _ = crmbot("followup", "list", "--limit", "2")
    assert "showing 2 of 3 follow-ups (--limit N or --all for more)" in out
    assert len(json.loads(crmbot("followup", "list", "--all", "--json")[1])) == 3
    code, out, _ = crmbot("timeline", "jane@acme.com", "--limit", "1")
    assert code == 0 and "showing" not in out  # nothing logged: nothing cut
    code, _, err = crmbot("deal", "list", "--limit", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_follow_up_times_are_in_the_viewers_zone_and_say_which(crmbot):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    crmbot("user", "add", "Nora", "--email", "nora@ourco.com", "--timezone", "America/New_York")
    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")
    code, out, _ = crmbot(
        "--as", "nora@ourco.com", "followup", "add", "jane@acme.com", "tomorrow 9am", "--json"
    )
    due = datetime.fromisoformat(json.loads(out)["due_at"])

    def shown(zone: str) -> str:
        local = due.astimezone(ZoneInfo(zone))
        return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"

    assert shown("America/New_York")[11:16] == "09:00"
    code, out, _ = crmbot("--as", "nora@ourco.com", "followup", "list")
    assert shown("America/New_York") in out
    # The CLI's admin has no zone of its own: the team's (CRM_TIMEZONE=Europe/Berlin).
    code, out, _ = crmbot("followup", "list")
    assert shown("Europe/Berlin") in out
    code, out, _ = crmbot("customer", "show", "jane@acme.com")
    assert shown("Europe/Berlin") in out
    code, out, _ = crmbot("--as", "nora@ourco.com", "followup", "snooze", "1", "1d")
    assert out.strip().endswith(("EST.", "EDT."))
