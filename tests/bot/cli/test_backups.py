"""`crmbot backup FILE` and `crmbot restore FILE` run in-process."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


def test_backup_then_restore_into_an_empty_store(crmbot, db, tmp_path, monkeypatch):
    if db.dialect != "sqlite":
        pytest.skip("the PostgreSQL round trip is tested in tests/crm/services/test_backups.py")
    assert crmbot("customer", "add", "Ann", "--email", "ann@f.com")[0] == 0
    code, out, err = crmbot("backup", str(tmp_path / "crm.tar"))
    assert code == 0 and "Backed up" in out, err
    code, _, err = crmbot("restore", str(tmp_path / "crm.tar"))
    assert code == 2 and "not empty" in err
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    code, out, err = crmbot("restore", str(tmp_path / "crm.tar"), "--json")
    assert code == 0, err
    assert json.loads(out)["counts"]["customers"] == 1
    code, out, _ = crmbot("customer", "find", "ann@f.com", "--json")
    assert [c["name"] for c in json.loads(out)] == ["Ann"]
    code, out, _ = crmbot("audit", "verify")
    assert code == 0 and "ok" in out
