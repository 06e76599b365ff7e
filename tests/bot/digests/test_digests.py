"""Digest content and rendering: text, HTML (autoescaped) and Slack (mrkdwn-escaped, block limits)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

from bot import digests
from bot.slack.blocks.digests import digest_messages
from bot.mail.smtp import OutgoingMail, build_message
from crm.models import AnalyticsRun, ChurnScore, CustomerSegment, Finding, FollowUp, Role
from tests.conftest import make_user
from tests.factories import add_customer

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
HOSTILE = "<script>alert('x')</script> & Söhne 🚀 " + "Very Long Name " * 30


def _scored(db, customers, *, probabilities, previous=None, segments=None):
    with db.transaction() as s:
        runs = []
        for n, probs in enumerate([previous, probabilities] if previous else [probabilities]):
            run = AnalyticsRun(cutoff=NOW - timedelta(days=2 - n), status="done", finished_at=NOW - timedelta(days=1 - n, hours=1))
            s.add(run)
            s.flush()
            runs.append(run)
            for customer, p in zip(customers, probs, strict=True):
                s.add(ChurnScore(run_id=run.id, customer_id=customer.id, probability=p, value_at_stake=1200.0,
                                 risk_level="high" if p >= 0.6 else "medium" if p >= 0.3 else "low",
                                 reasons=["no reply to 2 emails in 21 days", "orders down 60% vs last quarter"]))
                seg = (segments or {}).get(n, {}).get(customer.id, "Loyal")
                s.add(CustomerSegment(run_id=run.id, customer_id=customer.id, recency_score=3, frequency_score=3,
                                      monetary_score=3, rfm_segment=seg))
        return runs


def test_churn_digest_lists_high_and_rising_with_reasons(db, admin, settings):
    a = add_customer(db, admin, "Alice Able", "alice@able.com")
    b = add_customer(db, admin, "Bob Rising", "bob@rising.com")
    c = add_customer(db, admin, "Carol Calm", "carol@calm.com")
    _scored(db, [a, b, c], previous=[0.7, 0.2, 0.1], probabilities=[0.8, 0.45, 0.12])
    with db.session() as s:
        digest = digests.build_churn_digest(s, settings, now=NOW)
    high, rose = digest.sections
    assert [i.customer_id for i in high.items] == [a.id]
    assert [i.customer_id for i in rose.items] == [b.id]
    text = digests.render_text(digest)
    assert "Alice Able" in text and "no reply to 2 emails in 21 days" in text and "Carol" not in text
    assert "was 20%, +25 pts" in text


def test_empty_churn_digest_is_empty(db, admin, settings):
    a = add_customer(db, admin, "Alice Able", "alice@able.com")
    _scored(db, [a], probabilities=[0.05])
    with db.session() as s:
        assert digests.build_churn_digest(s, settings, now=NOW).empty
    with db.session() as s:  # nothing scored at all
        pass


def test_followups_digest_for_a_rep_with_findings_and_manager_rollup(db, admin, settings):
    rep, _ = make_user(db, "Rita Rep", Role.rep)
    boss, _ = make_user(db, "Mia Manager", Role.manager)
    customer = add_customer(db, admin, "Dora Due", "dora@due.com", owner_id=rep.id)
    with db.transaction() as s:
        s.add(FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=NOW - timedelta(days=2), note="send quote"))
        s.add(FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=NOW + timedelta(hours=3), note="call back"))
        s.add(FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=NOW + timedelta(days=3), note="later"))
        run = AnalyticsRun(cutoff=NOW, status="done", finished_at=NOW)
        s.add(run)
        s.flush()
        s.add(Finding(run_id=run.id, kind="unanswered_email", customer_id=customer.id, owner_id=rep.id,
                      why="Dora wrote 2 days ago and nobody answered", action="Reply today"))
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW)
        manager_digest = digests.build_followups_digest(s, settings, user=s.get(type(boss), boss.id), now=NOW)
    sections = {sec.key: sec for sec in digest.visible_sections}
    assert [i.details[0].split(" · ")[1] for i in sections["overdue"].items] == ["send quote"]
    assert [i.details[0].split(" · ")[1] for i in sections["today"].items] == ["call back"]
    assert sections["unanswered"].items[0].action == "Reply today"
    assert "team" not in sections
    team = {sec.key: sec for sec in manager_digest.visible_sections}["team"]
    assert team.summary == ["Rita Rep: 1 overdue follow-ups, 1 other items"]
    blocks = [b for message in digest_messages(digest) for b in message["blocks"]]
    action_ids = {e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]}
    assert {"followup_done", "followup_snooze_day", "followup_snooze_week", "card_show", "card_log_note"} <= action_ids


def test_hostile_names_are_escaped_everywhere(db, admin, settings):
    rep, _ = make_user(db, "Rita Rep", Role.rep)
    customer = add_customer(db, admin, HOSTILE[:200], "x@evil.com", owner_id=rep.id)
    with db.transaction() as s:
        s.add(FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=NOW - timedelta(hours=1), note="<b>bold</b> & <@U123>"))
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW)
    html = digests.render_html(digest)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; Söhne 🚀" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    slack = digest_messages(digest)
    text = " ".join(b["text"]["text"] for m in slack for b in m["blocks"] if b.get("text") and b["type"] == "section")
    assert "&lt;script&gt;" in text and "&lt;@U123&gt;" in text and "&#39;" not in text and "🚀" in text
    plain = digests.render_text(digest)
    assert "<script>alert('x')</script>" in plain  # plain text shows the name as written
    # a hostile name cannot inject mail headers
    msg = build_message(OutgoingMail(to=["a@b.com"], subject="Hi\r\nBcc: victim@x.com " + HOSTILE, text=plain, html=html),
                        sender="crmbot <bot@ourco.com>")
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None and "victim@x.com" in parsed["Subject"]


def test_long_digests_split_into_messages_within_block_limits(db, admin, settings):
    rep, _ = make_user(db, "Rita Rep", Role.rep)
    customer = add_customer(db, admin, "Busy Customer", "busy@c.com", owner_id=rep.id)
    with db.transaction() as s:
        for n in range(60):
            s.add(FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=NOW - timedelta(hours=n + 1), note=f"item {n}"))
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW, limit=60)
    messages = digest_messages(digest)
    assert len(messages) >= 3
    assert all(len(m["blocks"]) <= 50 for m in messages)
    shown = sum(1 for m in messages for b in m["blocks"] if b["type"] == "actions")
    assert shown == 60
    assert messages[-1]["blocks"][-1]["elements"][0]["text"] == f"Part {len(messages)} of {len(messages)}"


def test_segments_digest_sizes_moves_chart(db, admin, settings):
    customers = [add_customer(db, admin, f"C{n}", f"c{n}@c{n}.com") for n in range(4)]
    _scored(db, customers, previous=[0.1] * 4, probabilities=[0.1] * 4,
            segments={0: {c.id: "Loyal" for c in customers}, 1: {customers[0].id: "At Risk", customers[1].id: "At Risk",
                                                                  customers[2].id: "Loyal", customers[3].id: "Champions"}})
    with db.session() as s:
        digest = digests.build_segments_digest(s, settings, now=NOW)
    sizes, moves, attention = digest.sections
    assert "At Risk: 2 (+2)" in sizes.summary and "Loyal: 1 (-3)" in sizes.summary
    assert moves.summary[0] == "2 moved from Loyal to At Risk"
    assert {i.customer_id for i in attention.items} == {customers[0].id, customers[1].id, customers[3].id}
    assert digest.chart_png and digest.chart_png.startswith(b"\x89PNG")


def test_block_ids_are_unique_when_a_deal_appears_in_two_sections(db, admin, settings):
    from tests.factories import add_deal

    rep, rep_actor = make_user(db, "Rita Rep", Role.rep)
    customer = add_customer(db, admin, "Dora Due", "dora@due.com", owner_id=rep.id)
    deal = add_deal(db, rep_actor, settings, customer.id, "Renewal")
    with db.transaction() as s:
        run = AnalyticsRun(cutoff=NOW, status="done", finished_at=NOW)
        s.add(run)
        s.flush()
        for kind in ("rotting_deal", "close_date_passed"):
            s.add(Finding(run_id=run.id, kind=kind, customer_id=customer.id, deal_id=deal.id, owner_id=rep.id,
                          why=kind, action="act"))
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW)
    for message in digest_messages(digest):
        ids = [b["block_id"] for b in message["blocks"] if "block_id" in b]
        assert len(ids) == len(set(ids)) == 2


def test_a_jump_from_a_low_score_is_reported_even_among_many(db, admin, settings):
    from crm.services import bulk

    with db.transaction() as s:
        ids = bulk.insert_customers(s, [{"name": f"Steady {n}"} for n in range(600)] + [{"name": "Jumper"}], actor=admin, label="t")
    from crm.models import Customer

    with db.session() as s:
        rows = [s.get(Customer, i) for i in ids]
    before = [0.5] * 600 + [0.05]
    after = [0.55] * 600 + [0.35]
    _scored(db, rows, previous=before, probabilities=after)
    with db.session() as s:
        digest = digests.build_churn_digest(s, settings, now=NOW)
    rose = {sec.key: sec for sec in digest.sections}["rose"]
    assert [i.title for i in rose.items] == ["Jumper"]
