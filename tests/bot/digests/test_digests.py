"""Digest content and rendering: text, HTML (autoescaped) and Slack (mrkdwn-escaped, block
limits)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

from bot import digests
from bot.mail.smtp import OutgoingMail, build_message
from bot.slack.blocks.digests import digest_messages
from crm.models import AnalyticsRun, DigestRun, Finding, FollowUp, Role
from crm.services import insights
from tests.conftest import make_user
from tests.factories import add_customer, add_scoring_run

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
HOSTILE = "<script>alert('x')</script> & Söhne 🚀 " + "Very Long Name " * 30


DEFAULT_REASONS = ["no reply to 2 emails in 21 days", "orders down 60% vs the previous quarter"]


def _scored(
    db,
    customers,
    *,
    probabilities,
    previous=None,
    segments=None,
    values=None,
    reasons=None,
    never_bought=(),
):
    """One scoring run (two with ``previous``); all have bought but those in ``never_bought``."""
    ids = [c.id for c in customers]
    for n, probs in enumerate([previous, probabilities] if previous else [probabilities]):
        add_scoring_run(
            db,
            ids,
            probs,
            finished=NOW - timedelta(days=1 - n, hours=1),
            values=values,
            reasons=reasons or [DEFAULT_REASONS] * len(ids),
            segments=(segments or {}).get(n),
            never_bought=never_bought,
        )


def _add_run(db, customers, probabilities, *, hours_after=1, segments=None):
    """A further scoring run finished ``hours_after`` NOW, everyone having bought."""
    add_scoring_run(
        db,
        [c.id for c in customers],
        probabilities,
        finished=NOW + timedelta(hours=hours_after),
        segments=segments,
    )


def _sent(db, digest, recipient, *, at):
    """Record ``digest`` as sent to ``recipient`` at ``at``, the way the scheduler does."""
    with db.transaction() as s:
        s.add(
            DigestRun(
                job=digest.kind,
                period=at.isoformat(),
                recipient=recipient,
                status="sent",
                attempts=1,
                claimed_at=at,
                sent_at=at,
                meta={"ref": "<m@x>", **digest.memory},
            )
        )


def _section_texts(messages):
    """The mrkdwn of every section block of these Slack messages."""
    return " ".join(
        b["text"]["text"] for m in messages for b in m["blocks"] if b["type"] == "section"
    )


def _section(digest, key):
    return {sec.key: sec for sec in digest.sections}[key]


def _items(digest, key):
    return _section(digest, key).items


def test_churn_digest_ranks_paying_customers_by_value_at_risk(db, admin, settings):
    small = add_customer(db, admin, "Sure Small", "s@small.com")  # 90% of 1,000: 900 at risk
    big = add_customer(db, admin, "Big Maybe", "b@big.com")  # 45% of 100,000: 45,000 at risk
    lead = add_customer(db, admin, "Lead Never Bought", "l@lead.com")  # 95%, but never bought
    gone = add_customer(db, admin, "Gone Already", "g@gone.com", status="churned")
    calm = add_customer(db, admin, "Carol Calm", "carol@calm.com")
    _scored(
        db,
        [small, big, lead, gone, calm],
        probabilities=[0.9, 0.45, 0.95, 0.8, 0.1],
        values=[1000.0, 100_000.0, 5000.0, 9000.0, 50_000.0],
        never_bought={lead.id},
    )
    with db.session() as s:
        digest = digests.build_churn_digest(s, settings, now=NOW)
    top = _items(digest, "top")
    assert [i.customer_id for i in top] == [big.id, small.id]
    assert top[0].headline == "45,000 USD at risk" and top[1].headline == "900 USD at risk"
    text = digests.render_text(digest)
    assert "Lead Never Bought" not in text and "Gone Already" not in text and "Carol" not in text
    assert (
        "Not listed: 1 lead who never bought" in text
        and "1 customer already marked churned" in text
    )
    assert "2 paying customers at medium or high risk (1 high), 45,900 USD of value at risk" in text


def test_reasons_lead_to_actions_that_fit_them(db, admin, settings):
    rep, _ = make_user(db, "Rita Rep", Role.rep)
    names = ["Unanswered", "Lost Deal", "Late Order", "Quiet", "Won Through Deal", "Nobody Owns"]
    customers = [
        add_customer(
            db, admin, n, f"c{k}@x{k}.com", owner_id=None if n == "Nobody Owns" else rep.id
        )
        for k, n in enumerate(names)
    ]
    _scored(
        db,
        customers,
        probabilities=[0.9, 0.85, 0.8, 0.75, 0.7, 0.65],
        reasons=[
            ["interactions down 100% vs the previous quarter", "no reply to 2 emails in 21 days"],
            ["lost 1 deal in the last 90 days"],
            ["no purchase in 60 days (usually every 20)"],
            ["no outreach from us in 45 days", "no message from them in 50 days"],
            ["has never bought", "interactions down 40% vs the previous quarter"],
            ["orders down 60% vs the previous quarter"],
        ],
    )
    with db.session() as s:
        digest = digests.build_churn_digest(s, settings, now=NOW)
    by_name = {i.title: i for i in _items(digest, "top")}
    assert by_name["Unanswered"].action.startswith("Reply to their 2 unanswered emails today")
    assert by_name["Lost Deal"].action.startswith("Ask why they turned the last deal down")
    assert by_name["Late Order"].action.startswith(
        "Ask about their next order: it is 40 days later"
    )
    assert (
        by_name["Quiet"].action
        == "Call them this week: nobody on our side has been in touch for 45 days."
    )
    assert by_name["Nobody Owns"].action.startswith(
        "Give them an owner today, then: book an account review"
    )
    # They bought through a won deal: the stored "has never bought" would contradict the list.
    won = by_name["Won Through Deal"]
    assert "has never bought" not in " ".join(won.details) and "talk to us 40% less" in won.action
    assert len({i.action for i in by_name.values()}) == len(names)


def test_changes_are_since_the_last_digest_sent_to_that_recipient(db, admin, settings):
    a, b, c, d = (
        add_customer(db, admin, n, f"{n.lower()}@{n.lower()}.com")
        for n in ("Ann", "Ben", "Cat", "Dan")
    )
    everyone = [a, b, c, d]
    # Two refreshes on one day with the same scores: nothing has changed for anyone.
    _scored(db, everyone, previous=[0.7, 0.35, 0.1, 0.5], probabilities=[0.7, 0.35, 0.1, 0.5])
    with db.session() as s:
        first = digests.build_churn_digest(s, settings, now=NOW)
    assert "pts" not in digests.render_text(first) and "was " not in digests.render_text(first)
    assert [i.customer_id for i in _items(first, "top")] == [a.id, d.id, b.id]
    _sent(db, first, "email:max@ourco.com", at=NOW)
    # Two more refreshes: Cat rose by 35 pts since the digest but only 3 since the last refresh;
    # Dan's risk fell to low; Ann rose a little.
    _add_run(db, everyone, [0.72, 0.35, 0.42, 0.2], hours_after=20)
    _add_run(db, everyone, [0.75, 0.35, 0.45, 0.1], hours_after=44)
    later = NOW + timedelta(days=2)
    with db.session() as s:
        last = digests.last_digest(s, "churn", "email:max@ourco.com")
        digest = digests.build_churn_digest(s, settings, now=later, last=last)
        stranger = digests.build_churn_digest(
            s, settings, now=later, last=digests.last_digest(s, "churn", "email:new@ourco.com")
        )
    details = {i.customer_id: i.details[0] for i in _items(digest, "top")}
    assert "on this list since Mon 23 Nov, +5 pts" in details[a.id]
    assert "on this list since Mon 23 Nov, unchanged" in details[b.id]
    assert "new on this list (was 10% on Mon 23 Nov)" in details[c.id]
    assert _section(digest, "no_longer").summary == ["Dan: risk down to 10% (was 50%)"]
    assert "Changes are since your last digest on Mon 23 Nov" in digest.intro
    # Someone who never got the digest sees no change at all.
    assert all(" · " not in i.details[0] for i in _items(stranger, "top"))
    assert digest.memory["listed"][str(a.id)] == {"p": 0.75, "since": "2026-11-23"}
    # The next digest counts from this one; the list still remembers when Ann first came on it.
    _sent(db, digest, "email:max@ourco.com", at=later)
    _add_run(db, everyone, [0.8, 0.35, 0.45, 0.1], hours_after=70)
    with db.session() as s:
        last = digests.last_digest(s, "churn", "email:max@ourco.com")
        third = digests.build_churn_digest(s, settings, now=later + timedelta(days=1), last=last)
    ann = next(i for i in _items(third, "top") if i.customer_id == a.id)
    assert "on this list since Mon 23 Nov, +5 pts since Wed 25 Nov" in ann.details[0]


def test_a_rise_since_the_last_digest_is_reported_even_from_a_low_score(db, admin, settings):
    from crm.models import Customer
    from crm.services import bulk

    with db.transaction() as s:
        ids = bulk.insert_customers(
            s,
            [{"name": f"Steady {n}"} for n in range(30)] + [{"name": "Jumper"}],
            actor=admin,
            label="t",
        )
    with db.session() as s:
        rows = [s.get(Customer, i) for i in ids]
    _scored(db, rows, probabilities=[0.5] * 30 + [0.05])
    with db.session() as s:
        sent = digests.build_churn_digest(s, settings, now=NOW)
    _sent(db, sent, "channel:C1", at=NOW)
    _add_run(db, rows, [0.55] * 30 + [0.2], hours_after=5)  # from 5% to 20%: still low, but news
    with db.session() as s:
        digest = digests.build_churn_digest(
            s,
            settings,
            now=NOW + timedelta(days=1),
            last=digests.last_digest(s, "churn", "channel:C1"),
        )
    rose = _section(digest, "rose")
    assert [i.title for i in rose.items] == ["Jumper"]
    assert "was 5% on Mon 23 Nov, +15 pts" in rose.items[0].details[0]


def test_capped_sections_say_how_many_more_and_how_to_see_them(db, admin, settings):
    customers = [add_customer(db, admin, f"Customer {n:02d}", f"c{n}@c{n}.com") for n in range(14)]
    _scored(db, customers, probabilities=[0.5] * 14, values=[1000.0 * (n + 1) for n in range(14)])
    with db.session() as s:
        digest = digests.build_churn_digest(s, settings, now=NOW)
        everything = digests.build_churn_digest(s, settings, now=NOW, limit=None)
    assert len(_items(digest, "top")) == 10 and len(_items(everything, "top")) == 14
    assert "... and 4 more: crmbot digest preview churn --all" in digests.render_text(digest)
    assert "and 4 more: <code>crmbot digest preview churn --all</code>" in digests.render_html(
        digest
    )
    slack = " ".join(
        e["text"]
        for m in digest_messages(digest)
        for b in m["blocks"]
        if b["type"] == "context"
        for e in b["elements"]
    )
    assert "…and 4 more: `crmbot digest preview churn --all`" in slack
    assert "more:" not in digests.render_text(everything)


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
    due = {
        "send quote": timedelta(days=-2),
        "call back": timedelta(hours=3),
        "later": timedelta(days=3),
    }
    with db.transaction() as s:
        for note, delta in due.items():
            s.add(FollowUp(customer_id=customer.id, owner_id=rep.id, due_at=NOW + delta, note=note))
        run = AnalyticsRun(cutoff=NOW, status="done", finished_at=NOW)
        s.add(run)
        s.flush()
        s.add(
            Finding(
                run_id=run.id,
                kind="unanswered_email",
                customer_id=customer.id,
                owner_id=rep.id,
                why="Dora wrote 2 days ago and nobody answered",
                action="Reply today",
            )
        )
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW)
        manager_digest = digests.build_followups_digest(
            s, settings, user=s.get(type(boss), boss.id), now=NOW
        )
    sections = {sec.key: sec for sec in digest.visible_sections}
    assert [i.details[0].split(" · ")[1] for i in sections["overdue"].items] == ["send quote"]
    assert [i.details[0].split(" · ")[1] for i in sections["today"].items] == ["call back"]
    assert sections["unanswered"].items[0].action == "Reply today"
    assert "team" not in sections
    team = {sec.key: sec for sec in manager_digest.visible_sections}["team"]
    assert team.summary == ["Rita Rep: 1 overdue follow-up, 1 unanswered email"]
    blocks = [b for message in digest_messages(digest) for b in message["blocks"]]
    action_ids = {e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]}
    assert {
        "followup_done",
        "followup_snooze_day",
        "followup_snooze_week",
        "card_show",
        "card_log_note",
    } <= action_ids


def test_hostile_names_are_escaped_everywhere(db, admin, settings):
    rep, _ = make_user(db, "Rita Rep", Role.rep)
    customer = add_customer(db, admin, HOSTILE[:200], "x@evil.com", owner_id=rep.id)
    with db.transaction() as s:
        s.add(
            FollowUp(
                customer_id=customer.id,
                owner_id=rep.id,
                due_at=NOW - timedelta(hours=1),
                note="<b>bold</b> & <@U123>",
            )
        )
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW)
    html = digests.render_html(digest)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; Söhne 🚀" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    slack = digest_messages(digest)
    text = _section_texts(slack)
    assert (
        "&lt;script&gt;" in text
        and "&lt;@U123&gt;" in text
        and "&#39;" not in text
        and "🚀" in text
    )
    plain = digests.render_text(digest)
    assert "<script>alert('x')</script>" in plain  # plain text shows the name as written
    # a hostile name cannot inject mail headers
    msg = build_message(
        OutgoingMail(
            to=["a@b.com"], subject="Hi\r\nBcc: victim@x.com " + HOSTILE, text=plain, html=html
        ),
        sender="crmbot <bot@ourco.com>",
    )
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None and "victim@x.com" in parsed["Subject"]


def test_long_digests_split_into_messages_within_block_limits(db, admin, settings):
    rep, _ = make_user(db, "Rita Rep", Role.rep)
    customer = add_customer(db, admin, "Busy Customer", "busy@c.com", owner_id=rep.id)
    with db.transaction() as s:
        for n in range(60):
            s.add(
                FollowUp(
                    customer_id=customer.id,
                    owner_id=rep.id,
                    due_at=NOW - timedelta(hours=n + 1),
                    note=f"item {n}",
                )
            )
    with db.session() as s:
        digest = digests.build_followups_digest(
            s, settings, user=s.get(type(rep), rep.id), now=NOW, limit=60
        )
    messages = digest_messages(digest)
    assert len(messages) >= 3
    assert all(len(m["blocks"]) <= 50 for m in messages)
    shown = sum(1 for m in messages for b in m["blocks"] if b["type"] == "actions")
    assert shown == 60
    assert (
        messages[-1]["blocks"][-1]["elements"][0]["text"]
        == f"Part {len(messages)} of {len(messages)}"
    )


def test_segments_digest_sizes_moves_since_the_last_digest_and_accounts_to_act_on(
    db, admin, settings
):
    customers = [add_customer(db, admin, f"C{n}", f"c{n}@c{n}.com") for n in range(4)]
    _scored(
        db, customers, probabilities=[0.1] * 4, segments={0: {c.id: "Loyal" for c in customers}}
    )
    with db.session() as s:
        first = digests.build_segments_digest(s, settings, now=NOW)
    # The first digest has nothing to compare with: sizes, and no movement.
    assert (
        _section(first, "sizes").summary == ["Loyal: 4 (100%)"] and _section(first, "moves").empty
    )
    _sent(db, first, "email:max@ourco.com", at=NOW)
    # Two refreshes since: the movement is counted from the digest, not from the last refresh.
    moved = {customers[0].id: "At Risk", customers[1].id: "At Risk", customers[3].id: "Champions"}
    _add_run(db, customers, [0.1] * 4, hours_after=20, segments=moved)
    _add_run(db, customers, [0.1] * 4, hours_after=44, segments=moved)
    with db.session() as s:
        digest = digests.build_segments_digest(
            s,
            settings,
            now=NOW + timedelta(days=7),
            last=digests.last_digest(s, "segments", "email:max@ourco.com"),
        )
    sizes = _section(digest, "sizes").summary
    assert (
        "At Risk: 2 (50%, +2 since Mon 23 Nov)" in sizes
        and "Loyal: 1 (25%, -3 since Mon 23 Nov)" in sizes
    )
    assert _section(digest, "moves").summary[0] == "2 moved from Loyal to At Risk"
    at_risk = _section(digest, "attention:At Risk")
    assert {i.customer_id for i in at_risk.items} == {customers[0].id, customers[1].id}
    assert at_risk.note.startswith("For each: Win them back")
    assert [i.customer_id for i in _items(digest, "attention:Champions")] == [customers[3].id]
    assert digest.chart_png and digest.chart_png.startswith(b"\x89PNG")


def test_the_segment_chart_draws_every_segment():
    import struct

    def height(png: bytes) -> int:
        return struct.unpack(">I", png[20:24])[0]  # the IHDR chunk: width, then height

    counts = [insights.SegmentCount(f"Segment {n}", 200 - n, None) for n in range(14)]
    heights = [height(digests.segment_chart(counts[:n])[0]) for n in (11, 12, 14)]
    assert heights[0] < heights[1] < heights[2]  # one more bar each time, none dropped
    assert all(f"Segment {n} " in digests.segment_chart(counts)[1] for n in range(14))


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
            s.add(
                Finding(
                    run_id=run.id,
                    kind=kind,
                    customer_id=customer.id,
                    deal_id=deal.id,
                    owner_id=rep.id,
                    why=kind,
                    action="act",
                )
            )
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW)
    for message in digest_messages(digest):
        ids = [b["block_id"] for b in message["blocks"] if "block_id" in b]
        assert len(ids) == len(set(ids)) == 2


def test_followups_rank_deals_by_what_they_are_worth_and_count_every_finding(db, admin, settings):
    from decimal import Decimal

    from tests.factories import add_deal

    rep, rep_actor = make_user(db, "Rita Rep", Role.rep)
    customer = add_customer(db, admin, "Dora Due", "dora@due.com", owner_id=rep.id)
    small = add_deal(
        db,
        rep_actor,
        settings,
        customer.id,
        "Small but late",
        amount=Decimal("1000"),
        stage="negotiation",
    )
    big = add_deal(
        db,
        rep_actor,
        settings,
        customer.id,
        "Big proposal",
        amount=Decimal("40000"),
        stage="proposal",
    )
    early = add_deal(
        db, rep_actor, settings, customer.id, "Big but early", amount=Decimal("50000"), stage="lead"
    )
    with db.transaction() as s:
        run = AnalyticsRun(cutoff=NOW, status="done", finished_at=NOW)
        s.add(run)
        s.flush()
        # The rules rank the small deal first (idle longest); 250 quiet customers outrank them all.
        for n, deal in enumerate([small, early, big]):
            s.add(
                Finding(
                    run_id=run.id,
                    kind="rotting_deal",
                    customer_id=customer.id,
                    deal_id=deal.id,
                    owner_id=rep.id,
                    severity=1,
                    why=f"idle {n}",
                    action="Schedule the next step",
                    since=NOW - timedelta(days=90 - n),
                )
            )
        for n in range(250):
            s.add(
                Finding(
                    run_id=run.id,
                    kind="going_quiet",
                    customer_id=customer.id,
                    owner_id=rep.id,
                    severity=3,
                    why=f"quiet {n}",
                    action="Check in",
                    since=NOW - timedelta(days=n),
                )
            )
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW)
    rotting = _section(digest, "rotting")
    # 40,000 at 50% (20,000) before 50,000 at 10% (5,000) before 1,000 at 75% (750)
    assert [i.deal_id for i in rotting.items] == [big.id, early.id, small.id]
    assert rotting.heading == "Deals with no next step (3)"
    assert rotting.items[0].details[0] == "40,000 USD in proposal (50% likely to win)"
    assert rotting.note == "For each: Schedule the next step" and rotting.items[0].action is None
    quiet = _section(digest, "quiet")
    assert (
        quiet.heading == "Customers going quiet (250)"
        and len(quiet.items) == 15
        and quiet.more == 235
    )
    text = digests.render_text(digest)
    assert (
        "... and 235 more: crmbot digest preview followups --for rita.rep@ourco.com --all" in text
    )
    with db.session() as s:
        everything = digests.build_followups_digest(
            s, settings, user=s.get(type(rep), rep.id), now=NOW, limit=None
        )
    assert len(_section(everything, "quiet").items) == 250


def test_hostile_names_and_reasons_are_escaped_in_every_digest(db, admin, settings):
    customer = add_customer(
        db, admin, HOSTILE[:200], "x@evil.com", company="<img src=x onerror=alert(1)>"
    )
    _scored(
        db,
        [customer],
        probabilities=[0.9],
        reasons=[["<b>no reply</b> to <@U123> & co"]],
        segments={0: {customer.id: "Champions"}},
    )
    with db.session() as s:
        churn = digests.build_churn_digest(s, settings, now=NOW)
        segments = digests.build_segments_digest(s, settings, now=NOW)
    for digest in (churn, segments):
        html = digests.render_html(
            digest, customer_link=lambda cid: f"https://crm.example/o?t=a&b={cid}"
        )
        assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
        assert (
            "&lt;img src=x onerror=alert(1)&gt;" in html
            and 'href="https://crm.example/o?t=a&amp;b=' in html
        )
        slack = digest_messages(digest)
        text = _section_texts(slack)
        assert "&lt;script&gt;" in text and "<img" not in text and "&#39;" not in text
    assert "&lt;b&gt;no reply&lt;/b&gt; to &lt;@U123&gt; &amp; co" in digests.render_html(churn)
    slack_churn = _section_texts(digest_messages(churn))
    assert "&lt;@U123&gt;" in slack_churn and "<@U123>" not in slack_churn


def test_every_digest_fits_slacks_limits_however_long(db, admin, settings):
    from crm.models import Customer
    from crm.services import bulk

    with db.transaction() as s:
        ids = bulk.insert_customers(
            s, [{"name": f"Customer {n} " + "x" * 180} for n in range(120)], actor=admin, label="t"
        )
    with db.session() as s:
        rows = [s.get(Customer, i) for i in ids]
    _scored(
        db,
        rows,
        probabilities=[0.7] * 120,
        reasons=[["no reply to 2 emails in 21 days " + "y" * 3000]] * 120,
    )
    with db.session() as s:
        digest = digests.build_churn_digest(s, settings, now=NOW, limit=None)
    messages = digest_messages(digest)
    assert len(messages) > 2 and all(len(m["blocks"]) <= 50 for m in messages)
    for m in messages:
        for block in m["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000
            if block["type"] == "actions":
                assert len(block["elements"]) <= 5
        ids_ = [b["block_id"] for b in m["blocks"] if "block_id" in b]
        assert len(ids_) == len(set(ids_))
    assert sum(1 for m in messages for b in m["blocks"] if b["type"] == "actions") == 120


def test_on_demo_data_the_churn_digest_lists_few_paying_customers_with_varied_reasons(
    db, admin, tmp_path
):
    """End to end through the real analytics refresh: the digest relies on what it stores."""
    from collections import Counter
    from datetime import date

    import sqlalchemy as sa

    from crm.analytics.refresh import refresh
    from crm.config import Settings
    from crm.demo import generate_demo

    settings = Settings(_env_file=None, database_url=db.url, model_dir=str(tmp_path / "models"))  # type: ignore[call-arg]
    with db.transaction() as s:
        generate_demo(s, settings=settings, customers=500, seed=3, anchor=date(2026, 1, 1))
    cutoff = datetime(2026, 1, 1, 12, tzinfo=UTC)
    for _ in range(2):  # two refreshes on one day, as a new user would
        refresh(db, settings=settings, actor=admin, cutoff=cutoff)
    with db.session() as s:
        digest = digests.build_churn_digest(s, settings, now=cutoff)
        top = _items(digest, "top")
        ids = [i.customer_id for i in top]
        bought = {
            cid
            for (cid,) in s.execute(
                sa.text(
                    "SELECT customer_id FROM interactions"
                    " WHERE channel = 'purchase' AND deleted_at IS NULL"
                    " UNION SELECT customer_id FROM deals WHERE status = 'won'"
                )
            )
        }
    assert 0 < len(top) <= digests.CHURN_SHOWN
    assert set(ids) <= bought  # leads that never bought are not churn
    at_risk = [float(i.headline.split(" USD")[0].replace(",", "")) for i in top]
    assert at_risk == sorted(at_risk, reverse=True) and all(v > 0 for v in at_risk)
    assert not any(
        "pts" in d or "was " in d for i in top for d in i.details
    )  # no digest was sent yet
    actions = Counter(i.action for i in top)
    assert len(actions) > 1 and actions.most_common(1)[0][1] <= len(top) // 2


def test_dates_are_the_teams_own_west_of_greenwich(db, admin, settings):
    west = settings.model_copy(update={"timezone": "America/Los_Angeles"})
    ann = add_customer(db, admin, "Ann", "ann@ann.com")
    _scored(db, [ann], probabilities=[0.7])
    with db.session() as s:  # 07:00 UTC on Monday is still Sunday evening in Los Angeles
        first = digests.build_churn_digest(s, west, now=NOW)
    _sent(db, first, "email:max@ourco.com", at=NOW)
    _add_run(db, [ann], [0.8], hours_after=24)
    with db.session() as s:
        last = digests.last_digest(s, "churn", "email:max@ourco.com")
        digest = digests.build_churn_digest(s, west, now=NOW + timedelta(days=2), last=last)
    assert "on this list since Sun 22 Nov, +10 pts" in _items(digest, "top")[0].details[0]


def test_little_contact_and_a_won_deal_only_get_actions_of_their_own():
    from crm.services.insights import read_reason

    few = digests.churn_action(
        [read_reason("only 2 interactions in 90 days")], quiet_days=40, has_owner=True
    )
    assert few == "Book a check-in call: only 2 interactions with them in 90 days."
    won = digests.churn_action(
        [read_reason("no purchase besides 1 won deal")], quiet_days=3, has_owner=True
    )
    assert won.startswith("Propose their first order")


def test_followups_digest_suggests_a_cross_sell_for_customers_with_an_open_deal(
    db, settings, admin
):
    """Only the rep's own open deals, the biggest first, one line per customer, and only from
    the latest finished run's best suggestion."""
    from decimal import Decimal

    from crm.models import Product, ProductSuggestion
    from tests.factories import add_deal

    rep, _ = make_user(db, "Rita Rep", Role.rep)
    other, _ = make_user(db, "Otto Other", Role.rep)
    big = add_customer(db, admin, "Big Co", "a@big.com", owner_id=rep.id)
    small = add_customer(db, admin, "Small Co", "a@small.com", owner_id=rep.id)
    theirs = add_customer(db, admin, "Theirs Co", "a@theirs.com", owner_id=other.id)
    no_idea = add_customer(db, admin, "No Idea Co", "a@noidea.com", owner_id=rep.id)
    add_deal(db, admin, settings, small.id, "Starter", amount=Decimal("500"), owner_id=rep.id)
    add_deal(db, admin, settings, big.id, "Renewal", amount=Decimal("9000"), owner_id=rep.id)
    add_deal(db, admin, settings, big.id, "Add-on", amount=Decimal("100"), owner_id=rep.id)
    add_deal(db, admin, settings, theirs.id, "Theirs", amount=Decimal("99000"), owner_id=other.id)
    add_deal(db, admin, settings, no_idea.id, "Plain", amount=Decimal("700"), owner_id=rep.id)
    # A deal already about the best suggestion gets the next one instead.
    about = add_customer(db, admin, "About Co", "a@about.com", owner_id=rep.id)
    add_deal(
        db,
        admin,
        settings,
        about.id,
        "add-on SEATS for About",
        amount=Decimal("800"),
        owner_id=rep.id,
    )
    with db.transaction() as s:
        seats = Product(sku="SEATS", name="Add-on seats")
        training = Product(sku="TRAIN", name="Training")
        s.add_all([seats, training])
        old = AnalyticsRun(cutoff=NOW, status="done", finished_at=NOW - timedelta(days=1))
        run = AnalyticsRun(cutoff=NOW, status="done", finished_at=NOW - timedelta(hours=1))
        s.add_all([old, run])
        s.flush()
        why = "bought Team plan; 80% of such customers buy {p}, 3.0x the usual rate"
        for customer in (big, small, theirs, about):
            s.add(
                ProductSuggestion(
                    run_id=run.id,
                    customer_id=customer.id,
                    product_id=seats.id,
                    rank=1,
                    score=0.5,
                    reason=why.format(p="Add-on seats"),
                )
            )
        for customer in (big, about):
            s.add(
                ProductSuggestion(
                    run_id=run.id,
                    customer_id=customer.id,
                    product_id=training.id,
                    rank=2,
                    score=0.2,
                    reason=why.format(p="Training"),
                )
            )
        # An older run's suggestion for a customer the latest run suggests nothing for.
        s.add(
            ProductSuggestion(
                run_id=old.id,
                customer_id=no_idea.id,
                product_id=training.id,
                rank=1,
                score=0.9,
                reason=why.format(p="Training"),
            )
        )
    with db.session() as s:
        digest = digests.build_followups_digest(s, settings, user=s.get(type(rep), rep.id), now=NOW)
        capped = digests.build_followups_digest(
            s, settings, user=s.get(type(rep), rep.id), now=NOW, limit=1
        )
    section = {sec.key: sec for sec in digest.visible_sections}["cross_sell"]
    assert [i.title for i in section.items] == [
        "Renewal · Big Co",
        "add-on SEATS for About · About Co",
        "Starter · Small Co",
    ]
    assert section.items[0].details == [f"Suggest Add-on seats: {why.format(p='Add-on seats')}"]
    assert section.items[1].details == [f"Suggest Training: {why.format(p='Training')}"]
    assert section.items[0].headline.startswith("9,000")
    assert section.heading == "Cross-sell ideas (3)"
    short = {sec.key: sec for sec in capped.visible_sections}["cross_sell"]
    assert len(short.items) == 1 and short.more == 2 and short.see_all


def test_segments_digest_names_the_weeks_rising_topics(db, admin, settings):
    from crm.models import SegmentTerm

    customers = [add_customer(db, admin, f"T{n}", f"t{n}@t{n}.com") for n in range(3)]
    _scored(
        db, customers, probabilities=[0.1] * 3, segments={0: {c.id: "Loyal" for c in customers}}
    )
    with db.transaction() as s:
        runs = {}
        for days_ago in (10, 2):
            run = AnalyticsRun(
                cutoff=NOW, status="done", finished_at=NOW - timedelta(days=days_ago)
            )
            s.add(run)
            s.flush()
            runs[days_ago] = run.id
        for days_ago, counts in (
            (10, {"invoice": 9, "renewal": 9}),
            (2, {"invoice": 2, "outage": 8}),
        ):
            for term, count in counts.items():
                s.add(SegmentTerm(run_id=runs[days_ago], segment="Loyal", term=term, count=count))
    with db.session() as s:
        digest = digests.build_segments_digest(s, settings, now=NOW)
    assert _section(digest, "topics").summary == [
        "Loyal: outage (80% of what was said, 0% the week before)"
    ]
