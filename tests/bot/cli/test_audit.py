"""`crmbot audit verify|export` run in-process."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from crm.models import AuditEvent

pytestmark = pytest.mark.usefixtures("cli_timezone")
EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]


def test_verify_says_ok_then_names_the_first_edited_event_and_exits_1(crmbot, db):
    for n in range(3):
        assert crmbot("customer", "add", f"P {n}", "--email", f"p{n}@f{n}.com")[0] == 0
    code, out, _ = crmbot("audit", "verify")
    assert code == 0 and "ok: 3 events" in out
    with db.engine.begin() as conn:
        second = conn.execute(sa.select(EVENTS.c.id).where(EVENTS.c.seq == 2)).scalar_one()
        conn.execute(EVENTS.update().where(EVENTS.c.id == second).values(action="delete"))
    code, _, err = crmbot("audit", "verify")
    assert code == 1 and f"event #{second} (seq 2)" in err and "changed" in err
    code, out, _ = crmbot("audit", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["first_broken"]["seq"] == 2


def test_export_since_a_day_gives_events_with_their_links_for_managers_only(crmbot, db):
    assert crmbot("user", "add", "Vic", "--email", "vic@ourco.com", "--role", "viewer")[0] == 0
    assert crmbot("customer", "add", "Ann", "--email", "ann@f.com")[0] == 0
    code, out, _ = crmbot("audit", "export", "--since", "2000-01-01", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [e["seq"] for e in events] == [1, 2]
    assert events[1]["entity"] == "customer" and events[1]["after"]["name"] == "Ann"
    assert all(len(e["chain"]) == 64 for e in events)
    code, out, _ = crmbot("audit", "export", "--since", "2999-01-01")
    assert code == 0 and out == ""
    code, _, err = crmbot("--as", "vic@ourco.com", "audit", "export", "--since", "2000-01-01")
    assert code == 2 and "managers and admins" in err
    code, _, err = crmbot("audit", "export", "--since", "yesterday-ish")
    assert code == 2 and "not a date" in err
