"""crmbot's entry point: an error is one line and an exit code; `python -m bot.cli` runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("customer", "add", "Jane", "--email", "nope"), "not an email address"),
        (("customer", "show", "nobody at all"), "No customer"),
        (("deal", "move", "42", "won"), "no deal #42"),
        (("customer", "update", "jane@acme.com", "colour=blue"), "Cannot read"),
        (("followup", "add", "jane@acme.com", "when pigs fly"), "could not read"),
        (("followup", "add", "jane@acme.com", "tomorrow", "--kind", "party"), "not a kind"),
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


def test_every_command_takes_json_as_the_readme_promises():
    from tests.bot.cli.test_roles import command_tree

    without = [
        " ".join(path)
        for path, command in command_tree().items()
        if not any("--json" in getattr(p, "opts", ()) for p in command.params)
    ]
    assert without == []


@pytest.mark.parametrize(
    "args",
    [("version", "--json"), ("db", "current", "--json"), ("digest", "history", "--json")],
)
def test_version_db_current_and_digest_history_print_json(crmbot, args):
    code, out, err = crmbot(*args)
    assert code == 0, err
    data = json.loads(out)
    assert data == [] or isinstance(data, dict) and data


def test_a_usage_error_is_one_line_exit_2(crmbot):
    for args in (("deal", "move", "abc", "won"), ("nosuch",), ("deal", "add")):
        code, out, err = crmbot(*args)
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
        assert "╭" not in err and "Usage:" not in err
    assert "crmbot deal move --help" in crmbot("deal", "move", "abc", "won")[2]


def test_the_command_table_names_every_command_module():
    """`crmbot` loads a command module only when one of its commands runs: the table it loads
    them by must list exactly the commands each module adds."""
    import importlib

    import typer

    from bot.cli.main import COMMANDS

    for module, names in COMMANDS.items():
        holder = typer.Typer()
        importlib.import_module(module).register(holder)
        assert sorted(typer.main.get_group(holder).commands) == sorted(names), module


def test_a_command_closes_the_stores_connections_when_it_ends_however_it_ends(crmbot, monkeypatch):
    from crm.db import Database

    closed: list[Database] = []
    dispose = Database.dispose

    def recording_dispose(self: Database) -> None:
        closed.append(self)
        dispose(self)

    monkeypatch.setattr(Database, "dispose", recording_dispose)
    assert crmbot("deal", "list")[0] == 0
    assert len(closed) == 1
    assert crmbot("customer", "show", "nobody@nowhere.example")[0] == 2
    assert len(closed) == 2
    assert crmbot("version")[0] == 0  # never opened the store: nothing to close
    assert len(closed) == 2
