"""`crmbot digest ...`: preview, send, subscriptions, and the errors a user can fix."""

from __future__ import annotations

from crm.models import Role
from tests.conftest import make_user


def test_preview_and_send_followups(crmbot, db, admin, tmp_path, monkeypatch):
    from datetime import timedelta

    from crm.models import FollowUp, utcnow
    from tests.factories import add_customer

    monkeypatch.setenv("CRM_OUTBOX_DIR", str(tmp_path / "outbox"))
    rep, _ = make_user(db, "Rita Rep", Role.rep)
    customer = add_customer(db, admin, "Dora Due", "dora@due.com", owner_id=rep.id)
    with db.transaction() as s:
        s.add(FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=utcnow() - timedelta(days=1), note="send quote"))
    code, out, err = crmbot("digest", "preview", "followups", "--for", "rita.rep@ourco.com")
    assert code == 0 and "Dora Due" in out and "send quote" in out, err
    code, out, _ = crmbot("digest", "send", "followups", "--dry-run")
    assert code == 0 and "email:rita.rep@ourco.com: dry-run" in out
    assert not (tmp_path / "outbox").exists()
    code, out, _ = crmbot("digest", "send", "followups", "--to", "rita.rep@ourco.com")
    [written] = (tmp_path / "outbox").glob("*.eml")
    # Without an SMTP server nothing was sent: the line says where the mail is instead.
    assert code == 0 and "sent" not in out
    assert out.strip() == (
        f"email:rita.rep@ourco.com: written to outbox/{written.name} (no SMTP server is set)"
    )


def test_mistakes_get_one_line_and_exit_2(crmbot, db):
    make_user(db, "Rita Rep", Role.rep)
    for args, message in [
        (("digest", "preview", "weekly"), "not a digest"),
        (("digest", "preview", "churn", "--format", "pdf"), "not a format"),
        (("digest", "send", "followups", "--to", "nobody@x.com"), "does not receive"),
        (("digest", "unsubscribe", "rita.rep@ourco.com", "followups", "--channel", "fax"), "not a delivery channel"),
    ]:
        code, _, err = crmbot(*args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    from sqlmodel import select

    from crm.models import DigestOptOut, DigestRun

    with db.session() as s:
        assert s.exec(select(DigestRun)).all() == [] and s.exec(select(DigestOptOut)).all() == []


def test_unsubscribe_and_subscribe_again(crmbot, db):
    make_user(db, "Rita Rep", Role.rep)
    code, out, _ = crmbot("digest", "unsubscribe", "rita.rep@ourco.com", "followups")
    assert code == 0 and "no longer gets" in out
    code, out, _ = crmbot("digest", "subscribe", "rita.rep@ourco.com", "followups")
    assert code == 0 and "gets the followups digest" in out


def test_preview_all_lists_what_the_digest_leaves_out(crmbot, db, admin):
    from datetime import timedelta

    from crm.models import utcnow
    from tests.factories import add_customer, add_scoring_run

    customers = [add_customer(db, admin, f"Customer {n:02d}", f"c{n}@c{n}.com") for n in range(12)]
    values = [1000.0 * (n + 1) for n in range(12)]
    add_scoring_run(db, [c.id for c in customers], [0.5] * 12, values=values,
                    finished=utcnow() - timedelta(hours=1))
    code, out, err = crmbot("digest", "preview", "churn")
    assert code == 0, err
    assert "... and 2 more: crmbot digest preview churn --all" in out
    assert "Customer 11" in out and "Customer 00" not in out  # the most value at risk first
    code, out, err = crmbot("digest", "preview", "churn", "--all")
    assert code == 0, err
    assert all(f"Customer {n:02d}" in out for n in range(12)) and "more:" not in out
