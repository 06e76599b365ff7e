"""Every command that changes or sends anything checks the role: run as a viewer, each one
exits with status 2 and one line, and nothing in the store (or the outbox) changes.

The command tree is walked, so a new command must be put in one of the two lists below.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from bot.cli.main import app

pytestmark = pytest.mark.usefixtures("cli_timezone")

CUSTOMERS_CSV = "name,email\nNew Person,new@x-corp.com\n"
DEALS_CSV = "customer,title\njane@acme.com,Imported plan\n"
TRANSACTIONS_CSV = "customer_id,date,amount\nC-9,2026-01-02,10\n"
MAIL = (
    b"From: Jane Doe <jane@acme.com>\r\nTo: support@ourco.com\r\nSubject: Hello\r\n"
    b"Message-ID: <viewer-test@acme.com>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
    b"\r\nHi there\r\n"
)

# Each command that changes or sends something, and the arguments that would make it do so.
CHANGING: dict[tuple[str, ...], tuple[str, ...]] = {
    ("demo",): ("--customers", "20"),
    ("run",): (),
    ("log",): ("jane@acme.com", "a", "note"),
    ("customer", "add"): ("New One", "--email", "new.one@x-corp.com"),
    ("customer", "update"): ("jane@acme.com", "status=active", "phone=+44 20 7946 0000"),
    ("customer", "merge"): ("jane@acme.com", "bob@initech.com"),
    ("customer", "unmerge"): ("1",),
    ("customer", "detach"): ("jane@acme.com", "jane@acme.com"),
    ("customer", "not-duplicate"): ("jane@acme.com", "bob@initech.com"),
    ("customer", "forget"): ("jane@acme.com", "--reason", "asked by email"),
    ("deal", "add"): ("jane@acme.com", "Another plan"),
    ("deal", "move"): ("1", "proposal"),
    ("deal", "won"): ("1",),
    ("deal", "lost"): ("1", "too", "dear"),
    ("followup", "add"): ("jane@acme.com", "tomorrow 9am"),
    ("followup", "done"): ("1",),
    ("followup", "snooze"): ("1", "1w"),
    ("import", "customers"): ("{customers.csv}",),
    ("import", "deals"): ("{deals.csv}",),
    ("import", "products"): ("{products.csv}",),
    ("import", "transactions"): ("{transactions.csv}",),
    ("user", "add"): ("Newbie", "--email", "newbie@ourco.com"),
    ("user", "role"): ("rita@ourco.com", "admin"),
    ("user", "deactivate"): ("rita@ourco.com",),
    ("user", "activate"): ("max@ourco.com",),
    ("digest", "send"): ("followups",),
    ("digest", "unsubscribe"): ("rita@ourco.com", "followups"),
    ("digest", "subscribe"): ("max@ourco.com", "churn"),
    ("mail", "poll"): ("--once",),
    ("ingest",): ("{mail.eml}",),
    ("analytics", "refresh"): (),
    ("campaign", "create"): ("spring", "--filter", "status=lead", "--template", "{campaign.j2}"),
    ("campaign", "send"): ("spring",),
    ("campaign", "optout"): ("jane@acme.com",),
    ("backup",): ("{backup.tar}",),
    ("restore",): ("{backup.tar}",),
    ("retention", "apply"): (),
    ("keys", "rotate"): (),
    ("keys", "reindex"): (),
}

# Commands that change no data, and why.
NO_CHANGE = {
    ("version",): "prints the version",
    ("db", "current"): "reads the schema revision",
    ("db", "upgrade"): "applies the migrations every command applies by itself; no data changes",
    ("timeline",): "reads",
    ("customer", "find"): "reads",
    ("customer", "show"): "reads",
    ("customer", "list"): "reads",
    ("customer", "duplicates"): "reads",
    ("customer", "export"): "reads",
    ("deal", "list"): "reads",
    ("followup", "list"): "reads",
    ("user", "list"): "reads",
    ("audit", "verify"): "reads",
    ("audit", "export"): "reads",
    ("retention", "status"): "reads",
    ("keys", "status"): "reads",
    ("keys", "generate"): "prints a new key; no database",
    ("digest", "preview"): "shows a digest without sending it",
    ("digest", "history"): "reads",
    ("mail", "inspect"): "parses a file; no database",
    ("mail", "status"): "reads",
    ("mail", "quarantine"): "reads",
    ("mail", "ignored"): "reads",
    ("slack", "manifest"): "prints the Slack app manifest",
    ("analytics", "evaluate"): "works in a scratch database of its own",
    ("campaign", "preview"): "reads",
    ("campaign", "report"): "reads",
    ("campaign", "list"): "reads",
    ("analytics", "rules"): "reads the purchase lines",
    ("analytics", "topics"): "reads the stored topics",
}


def command_tree() -> dict[tuple[str, ...], object]:
    """Every command a user can run, by its path (``("deal", "add")``), from the root group."""
    import typer

    root = typer.main.get_command(app)
    found: dict[tuple[str, ...], object] = {}

    def walk(group: object, path: tuple[str, ...]) -> None:
        ctx = typer.Context(group)  # type: ignore[arg-type]
        for name in group.list_commands(ctx):  # type: ignore[attr-defined]
            command = group.get_command(ctx, name)  # type: ignore[attr-defined]
            if hasattr(command, "list_commands"):
                walk(command, (*path, name))
            else:
                found[(*path, name)] = command

    walk(root, ())
    return found


def test_every_command_is_known_to_change_something_or_not():
    tree = set(command_tree())
    assert tree == set(CHANGING) | set(NO_CHANGE), (
        f"new: {sorted(tree - set(CHANGING) - set(NO_CHANGE))}; "
        f"gone: {sorted((set(CHANGING) | set(NO_CHANGE)) - tree)}"
    )
    assert not set(CHANGING) & set(NO_CHANGE)


def _everything(db) -> dict[str, list[tuple]]:
    """Every row of every table (the audit trail included), to compare before and after."""
    rows: dict[str, list[tuple]] = {}
    with db.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            order = [c for c in table.primary_key.columns] or list(table.columns)
            rows[table.name] = [
                tuple(r) for r in conn.execute(sa.select(table).order_by(*order)).all()
            ]
    return rows


@pytest.fixture
def viewer_world(crmbot, tmp_path: Path, monkeypatch):
    """A store with people, customers, a deal and a follow-up; the outbox; the files to import."""
    monkeypatch.setenv("CRM_IMAP_HOST", "127.0.0.1")  # `mail poll` gets as far as the role check
    monkeypatch.setenv("CRM_IMAP_USER", "support@ourco.com")
    monkeypatch.setenv("CRM_IMAP_PASSWORD", "secret")
    for name, email, role in (
        ("Rita Rep", "rita@ourco.com", "rep"),
        ("Max Manager", "max@ourco.com", "manager"),
        ("Vic Viewer", "vic@ourco.com", "viewer"),
    ):
        assert crmbot("user", "add", name, "--email", email, "--role", role)[0] == 0
    assert crmbot("user", "deactivate", "max@ourco.com")[0] == 0
    crmbot("customer", "add", "Jane Doe", "--email", "jane@acme.com", "--owner", "rita@ourco.com")
    crmbot("customer", "add", "Bob Stone", "--email", "bob@initech.com")
    assert crmbot("deal", "add", "jane@acme.com", "Team plan")[0] == 0
    assert crmbot("followup", "add", "jane@acme.com", "tomorrow 9am", "call")[0] == 0
    files = {
        "customers.csv": CUSTOMERS_CSV.encode(),
        "deals.csv": DEALS_CSV.encode(),
        "products.csv": b"sku,name,category\nP-1,Espresso beans,Coffee\n",
        "transactions.csv": TRANSACTIONS_CSV.encode(),
        "mail.eml": MAIL,
        "campaign.j2": b"Subject: News\nHello {{ customer.name }}\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize("path", sorted(CHANGING), ids=" ".join)
def test_a_viewer_can_change_and_send_nothing(crmbot, db, viewer_world: Path, path):
    args = [str(viewer_world / a[1:-1]) if a.startswith("{") else a for a in CHANGING[path]]
    before = _everything(db)
    code, out, err = crmbot("--as", "vic@ourco.com", *path, *args)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "viewer" in err or "Only" in err, err
    assert _everything(db) == before
    outbox = viewer_world / "outbox"
    assert not outbox.exists() or not any(outbox.iterdir())


def test_the_same_commands_work_for_someone_allowed(crmbot, db, viewer_world: Path):
    """The refusals above are about the role: an admin's `digest send` and `ingest` go through,
    and their audit events name the person who ran them."""
    from sqlmodel import select

    from crm.models import AuditEvent

    crmbot("user", "role", "rita@ourco.com", "admin")
    code, _, err = crmbot("--as", "rita@ourco.com", "ingest", str(viewer_world / "mail.eml"))
    assert code == 0, err
    code, out, err = crmbot("--as", "rita@ourco.com", "digest", "send", "followups")
    assert code == 0, err
    with db.session() as s:
        events = s.exec(
            select(AuditEvent).where(AuditEvent.action.in_(["capture", "send_now"]))
        ).all()
    assert {e.action for e in events} == {"capture", "send_now"}
    assert {e.actor for e in events} == {"cli:rita@ourco.com (Rita Rep)"}
