"""`crmbot import ...` run in-process, then the imported data used by `crmbot user ...`."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


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
