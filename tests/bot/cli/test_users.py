"""`crmbot user ...` run in-process."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


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
