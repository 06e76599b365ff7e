"""The crmbot command line, run in-process (and once as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.fixture
def crmbot(crmbot, monkeypatch):
    """The shared in-process runner, with this module's settings."""
    monkeypatch.setenv("CRM_TIMEZONE", "Europe/Berlin")
    return crmbot


def test_customer_lifecycle_with_json(crmbot):
    code, out, _ = crmbot(
        "customer",
        "add",
        "Jane Doe",
        "--email",
        "jane@acme.com",
        "--company",
        "Acme Corp",
        "--json",
    )
    assert code == 0
    jane = json.loads(out)
    assert jane["domain"] == "acme.com" and jane["contacts"] == [
        {"kind": "email", "value": "jane@acme.com"}
    ]
    code, out, _ = crmbot("customer", "find", "acme", "--json")
    assert [r["id"] for r in json.loads(out)] == [jane["id"]]
    code, out, _ = crmbot(
        "customer", "update", "jane@acme.com", "status=active", "tags=vip", "--json"
    )
    assert json.loads(out)["status"] == "active"
    code, out, _ = crmbot("customer", "show", "Jane Doe")
    assert code == 0 and "Jane Doe" in out and "jane@acme.com" in out


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("customer", "add", "Jane", "--email", "nope"), "not an email address"),
        (("customer", "show", "nobody at all"), "No customer"),
        (("deal", "move", "42", "won"), "no deal #42"),
        (("customer", "update", "jane@acme.com", "colour=blue"), "Cannot read"),
        (("followup", "add", "jane@acme.com", "when pigs fly"), "could not read"),
        (("log", "jane@acme.com", "hi", "--channel", "fax"), "not a channel"),
        (("user", "role", "jane@acme.com", "king"), "No user"),
    ],
)
def test_bad_input_is_one_line_on_stderr_exit_2_and_nothing_written(crmbot, db, args, message):
    crmbot("customer", "add", "Jane", "--email", "jane@acme.com")
    with db.session() as s:
        from sqlmodel import func, select

        from crm.models import AuditEvent

        before = s.exec(select(func.count()).select_from(AuditEvent)).one()
    code, out, err = crmbot(*args)
    assert code == 2
    assert message.lower() in err.lower()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with db.session() as s:
        assert s.exec(select(func.count()).select_from(AuditEvent)).one() == before


def test_import_and_users(crmbot, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("name,email\nAnn,ann@x-corp.com\nBen,ben@y-corp.com\n")
    code, out, _ = crmbot("import", "customers", str(path), "--json")
    assert code == 0 and json.loads(out)["created"] == 2
    code, out, _ = crmbot(
        "user", "add", "Rita Rep", "--email", "rita@ourco.com", "--role", "rep", "--json"
    )
    assert json.loads(out)["role"] == "rep"
    code, out, _ = crmbot("user", "role", "rita@ourco.com", "manager", "--json")
    assert json.loads(out)["role"] == "manager"
    code, _, err = crmbot("--as", "rita@ourco.com", "user", "role", "rita@ourco.com", "admin")
    assert code == 2 and "Only admins" in err
    code, _, err = crmbot("import", "customers", str(tmp_path / "missing.csv"))
    assert code == 2 and "no file" in err


def test_demo_then_find_acme(crmbot):
    code, out, _ = crmbot("demo", "--customers", "200", "--seed", "3", "--json")
    assert code == 0 and json.loads(out)["customers"] == 200
    code, out, _ = crmbot("customer", "find", "acme", "--json")
    assert code == 0 and json.loads(out)
    code, _, err = crmbot("demo", "--customers", "200", "--seed", "3")
    assert code == 2 and "already" in err


def test_real_process_usage_error_and_version(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "deal", "move", "abc", "won"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env | {"PYTHONPATH": ":".join(sys.path)},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env | {"PYTHONPATH": ":".join(sys.path)},
    )
    assert done.returncode == 0 and "crmbot" in done.stdout


def test_names_with_brackets_are_printed_as_written(crmbot):
    code, out, err = crmbot("customer", "add", "Acme [/bold] Ltd [eu]", "--email", "x@acme-eu.com")
    assert code == 0 and "Acme [/bold] Ltd [eu]" in out, err
    code, out, _ = crmbot("customer", "find", "acme")
    assert code == 0 and "[eu]" in out


def test_a_change_the_database_refuses_is_one_clear_line_and_nothing_is_written(
    crmbot, monkeypatch
):
    import sqlalchemy as sa

    from crm.services import customers

    create = customers.create_customer

    def refused(session, **kwargs):
        create(session, **kwargs)  # written in the unit of work, then the database says no
        raise sa.exc.IntegrityError(
            "INSERT ...", {}, Exception("value too long for column\nDETAIL")
        )

    monkeypatch.setattr(customers, "create_customer", refused)
    code, _, err = crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com")
    assert code == 1
    assert err.strip() == (
        "error: the database refused the change, nothing was written: value too long for column"
    )
    monkeypatch.setattr(customers, "create_customer", create)
    code, out, _ = crmbot("customer", "find", "jane@acme.com", "--json")
    assert code == 0 and json.loads(out) == []


def test_deactivating_a_user_stops_them_acting_and_is_audited(crmbot, db):
    from sqlmodel import select

    from crm.models import AuditEvent, User

    assert crmbot("user", "add", "Rita", "--email", "rita@ourco.com", "--role", "admin")[0] == 0
    assert crmbot("user", "add", "Sam", "--email", "sam@ourco.com")[0] == 0
    code, out, _ = crmbot("user", "deactivate", "sam@ourco.com")
    assert code == 0 and "deactivated" in out
    code, _, err = crmbot("user", "deactivate", "nobody@ourco.com")
    assert code != 0 and "nobody@ourco.com" in err
    code, _, err = crmbot(
        "--as", "sam@ourco.com", "customer", "add", "Acme", "--email", "a@acme.com"
    )
    assert code != 0 and "deactivated" in err
    code, _, err = crmbot("--as", "rita@ourco.com", "user", "deactivate", "rita@ourco.com")
    assert code != 0 and "cannot deactivate yourself" in err
    code, out, _ = crmbot("user", "list", "--json")
    assert {u["email"]: u["active"] for u in json.loads(out)} == {
        "rita@ourco.com": True,
        "sam@ourco.com": False,
    }
    assert crmbot("user", "activate", "sam@ourco.com")[0] == 0
    code, _, err = crmbot(
        "--as", "sam@ourco.com", "customer", "add", "Acme", "--email", "a@acme.com"
    )
    assert code == 0, err
    with db.session() as session:
        sam = session.exec(select(User).where(User.email == "sam@ourco.com")).one()
        actions = session.exec(
            select(AuditEvent.action).where(
                AuditEvent.entity == "user", AuditEvent.entity_id == str(sam.id)
            )
        ).all()
    assert sam.active and {"deactivate", "activate"} <= set(actions)
