from __future__ import annotations

import pytest
from sqlmodel import select

from crm.models import (
    AuditEvent,
    ContactPoint,
    Customer,
    CustomerCreate,
    CustomerUpdate,
    Deal,
    FollowUp,
    Interaction,
    Role,
)
from crm.services import customers
from crm.services.errors import Ambiguous, CRMError, NotFound, PermissionDenied
from tests.conftest import make_user
from tests.factories import add_customer, add_deal


def test_create_derives_company_domain_and_writes_audit(db, admin):
    customer = add_customer(db, admin, "Jane Doe", "  Jane.Doe@ACME.com ", company="Acme Corp")
    with db.session() as s:
        stored = s.get(Customer, customer.id)
        assert stored.domain == "acme.com"
        assert stored.name_key == "jane doe"
        points = customers.contact_points(s, customer.id)
        assert [(p.kind, p.value) for p in points] == [("email", "jane.doe@acme.com")]
        event = s.exec(select(AuditEvent).where(AuditEvent.entity == "customer")).one()
        assert event.action == "create" and event.actor == "test-admin"
        assert event.after["email"] == "jane.doe@acme.com"


def test_free_mail_address_gives_no_company_domain(db, admin):
    customer = add_customer(db, admin, "Sam Solo", "sam.solo@gmail.com")
    assert customer.domain is None


def test_same_email_twice_is_refused_and_nothing_is_written(db, admin):
    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    with pytest.raises(CRMError, match="already belongs"):
        add_customer(db, admin, "Jane Again", "JANE@acme.com")
    with db.session() as s:
        assert len(s.exec(select(Customer)).all()) == 1
        assert len(s.exec(select(AuditEvent)).all()) == 1


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201])
def test_bad_names_are_refused(db, admin, bad):
    with pytest.raises(CRMError):
        add_customer(db, admin, bad, None)


def test_bad_email_is_refused_with_the_right_form(db, admin):
    with pytest.raises(CRMError) as info:
        add_customer(db, admin, "Jane", "jane-at-acme")
    assert "name@example.com" in str(info.value)


def test_find_by_email_domain_id_and_fuzzy_name(db, admin):
    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com", company="Acme Corp")
    bob = add_customer(db, admin, "Bob Stone", "bob@acme.com", company="Acme Corp")
    zoe = add_customer(db, admin, "Zoë Müller", "zoe@globex.de", company="Globex")
    with db.session() as s:
        assert [m.customer.id for m in customers.find_customers(s, "JANE@acme.com")] == [jane.id]
        assert {m.customer.id for m in customers.find_customers(s, "acme.com")} == {jane.id, bob.id}
        assert [m.customer.id for m in customers.find_customers(s, f"#{zoe.id}")] == [zoe.id]
        # accents and case do not matter, and a typo still finds her
        assert customers.find_customers(s, "zoe muller")[0].customer.id == zoe.id
        assert customers.find_customers(s, "Zoe Mueler")[0].customer.id == zoe.id
        # company names are searchable too
        assert customers.find_customers(s, "globex")[0].customer.id == zoe.id


def test_search_sees_customers_added_and_renamed_after_the_first_search(db, admin):
    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    with db.session() as s:
        assert (
            customers.find_customers(s, "Priya Patel") == []
            or customers.find_customers(s, "Priya Patel")[0].score < 90
        )
    priya = add_customer(db, admin, "Priya Patel", "priya@initech.com")
    with db.session() as s:
        assert customers.find_customers(s, "Priya Patel")[0].customer.id == priya.id
    with db.transaction() as s:
        customers.update_customer(
            s, customer_id=priya.id, changes=CustomerUpdate(name="Priya Sharma"), actor=admin
        )
    with db.session() as s:
        assert customers.find_customers(s, "Priya Sharma")[0].customer.id == priya.id


def test_full_rebuild_runs_in_the_background_while_searches_go_on(db, admin, monkeypatch):
    import threading
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from crm.services import search

    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    with db.session() as s:
        search.warm_name_index(s)
        index = search.name_index_for(s)
    # A rename the incremental refresh cannot see (an old timestamp, as a restored backup or a
    # hand-made SQL fix leaves): only a full rebuild finds it.
    with db.transaction() as s:
        s.execute(
            sa.update(Customer)
            .where(Customer.id == jane.id)
            .values(
                name="Priya Patel",
                name_key="priya patel",
                updated_at=datetime(2000, 1, 1, tzinfo=UTC),
            )
        )
    gate = threading.Event()
    full_load = search.NameIndex._full_load
    begin_modes = []

    def slow_full_load(self, session):
        begin_modes.append(session.get_bind().get_execution_options().get("sqlite_begin"))
        assert gate.wait(10)
        return full_load(self, session)

    monkeypatch.setattr(search.NameIndex, "_full_load", slow_full_load)
    monkeypatch.setattr(search, "FULL_RELOAD_EVERY", 0.0)
    with db.transaction() as s:
        # The rebuild is due and starts; this search (in a write unit) is answered from the
        # index as it is.
        assert customers.find_customers(s, "Jane Do")[0].customer.id == jane.id
    assert index._rebuild is not None and index._rebuild.is_alive()
    gate.set()
    index._rebuild.join(10)
    # The rebuild read on its own, as a plain read: on SQLite it never held the write lock.
    assert begin_modes == ["DEFERRED"]
    monkeypatch.setattr(search, "FULL_RELOAD_EVERY", 600.0)
    with db.session() as s:
        assert customers.find_customers(s, "Priya Patl")[0].customer.id == jane.id
        assert not customers.find_customers(s, "Jane Do")


def test_a_rebuild_older_than_a_full_load_is_thrown_away(db, admin, monkeypatch):
    import threading

    from crm.services import search

    jane = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    bob = add_customer(db, admin, "Bob Stone", "bob@initech.com")
    with db.session() as s:
        search.warm_name_index(s)
        index = search.name_index_for(s)
    gate = threading.Event()
    full_load = search.NameIndex._full_load

    def gated_in_background(self, session):
        if threading.current_thread().name == "name-index-rebuild":
            assert gate.wait(10)
        return full_load(self, session)

    monkeypatch.setattr(search.NameIndex, "_full_load", gated_in_background)
    monkeypatch.setattr(search, "FULL_RELOAD_EVERY", 0.0)
    with db.session() as s:
        customers.find_customers(s, "Bob Ston")  # starts a rebuild, which waits at the gate
    monkeypatch.setattr(search, "FULL_RELOAD_EVERY", 600.0)
    with db.transaction() as s:
        customers.merge_customers(s, keep_id=jane.id, merge_id=bob.id, actor=admin)
    with db.session() as s:
        customers.find_customers(s, "Bob Ston")  # rows vanished: a full load, here and now
    foreground = index._index
    assert bob.id not in foreground.position
    gate.set()  # the older rebuild now finishes: it started before the full load and must
    index._rebuild.join(10)  # not replace it
    assert index._index is foreground


def test_resolve_asks_when_ambiguous_and_suggests_when_unknown(db, admin):
    add_customer(db, admin, "Jane Doe", "jane@acme.com", company="Acme Corp")
    add_customer(db, admin, "John Doe", "john@acme.io", company="Acme Inc")
    with db.session() as s:
        with pytest.raises(Ambiguous) as info:
            customers.resolve_customer(s, "acme")
        assert len(info.value.candidates) == 2
        with pytest.raises(NotFound) as missing:
            customers.resolve_customer(s, "Jne Do")
        assert any("Jane Doe" in c for c in missing.value.suggestions)
        assert customers.resolve_customer(s, "jane doe").name == "Jane Doe"
        with pytest.raises(NotFound):
            customers.resolve_customer(s, "qqqqqq zzzz")


def test_update_records_before_and_after(db, admin):
    customer = add_customer(db, admin)
    with db.transaction() as s:
        customers.update_customer(
            s,
            customer_id=customer.id,
            changes=CustomerUpdate(status="active", tags=["VIP", "eu", "vip"]),
            actor=admin,
        )
    with db.session() as s:
        stored = s.get(Customer, customer.id)
        assert stored.status == "active" and stored.tags == ["eu", "vip"]
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "update")).one()
        assert event.before["status"] == "lead" and event.after["status"] == "active"


def test_empty_update_is_an_error(db, admin):
    customer = add_customer(db, admin)
    with db.transaction() as s, pytest.raises(CRMError, match="Nothing to change"):
        customers.update_customer(s, customer_id=customer.id, changes=CustomerUpdate(), actor=admin)


def test_contact_points_are_normalised_and_unique(db, admin):
    jane = add_customer(db, admin, "Jane", "jane@acme.com")
    bob = add_customer(db, admin, "Bob", "bob@acme.com")
    with db.transaction() as s:
        point = customers.add_contact_point(
            s, customer_id=jane.id, kind="phone", value="+44 (20) 7946-0958", actor=admin
        )
        assert point.value == "+442079460958"
        slack = customers.add_contact_point(
            s, customer_id=jane.id, kind="slack", value="<@u024be7lh>", actor=admin
        )
        assert slack.value == "U024BE7LH"
    with db.transaction() as s, pytest.raises(CRMError, match="already belongs"):
        customers.add_contact_point(
            s, customer_id=bob.id, kind="phone", value="+44 20 7946 0958", actor=admin
        )
    with db.transaction() as s, pytest.raises(CRMError):
        customers.add_contact_point(s, customer_id=bob.id, kind="phone", value="12", actor=admin)


def test_merge_moves_everything_and_deletes_the_duplicate(db, admin, settings):
    from crm.models import InteractionCreate
    from crm.services import followups, interactions

    keep = add_customer(db, admin, "Jane Doe", "jane@acme.com", tags=["a"])
    dup = add_customer(db, admin, "J. Doe", "jdoe@gmail.com", company="Acme Corp", tags=["b"])
    deal = add_deal(db, admin, settings, dup.id)
    with db.transaction() as s:
        interactions.record_interaction(
            s,
            actor=admin,
            interaction_in=InteractionCreate(customer_id=dup.id, channel="note", body="hi"),
        )
        followups.create_follow_up(
            s, customer_id=dup.id, when="tomorrow 9am", actor=admin, tz="UTC"
        )
    with db.transaction() as s:
        customers.merge_customers(s, keep_id=keep.id, merge_id=dup.id, actor=admin)
    with db.session() as s:
        assert s.get(Customer, dup.id) is None
        kept = s.get(Customer, keep.id)
        assert kept.company == "Acme Corp" and kept.tags == ["a", "b"]
        assert {p.value for p in s.exec(select(ContactPoint))} == {
            "jane@acme.com",
            "jdoe@gmail.com",
        }
        assert s.get(Deal, deal.id).customer_id == keep.id
        assert all(i.customer_id == keep.id for i in s.exec(select(Interaction)))
        assert all(f.customer_id == keep.id for f in s.exec(select(FollowUp)))
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "merge")).one()
        assert event.before["merged"]["id"] == dup.id


def test_merge_into_itself_and_by_a_rep_are_refused(db, admin):
    jane = add_customer(db, admin)
    other = add_customer(db, admin, "Bob", "bob@acme.com")
    _, rep = make_user(db, "Rita Rep", Role.rep)
    with db.transaction() as s, pytest.raises(CRMError):
        customers.merge_customers(s, keep_id=jane.id, merge_id=jane.id, actor=admin)
    with db.transaction() as s, pytest.raises(PermissionDenied):
        customers.merge_customers(s, keep_id=jane.id, merge_id=other.id, actor=rep)


def test_viewer_cannot_create(db):
    _, viewer = make_user(db, "Vic Viewer", Role.viewer)
    with db.transaction() as s, pytest.raises(PermissionDenied):
        customers.create_customer(s, actor=viewer, customer_in=CustomerCreate(name="X"))


def test_customer_card_collects_what_a_rep_needs(db, admin, settings):
    customer = add_customer(db, admin)
    add_deal(db, admin, settings, customer.id, "Big one", amount="5000")
    with db.session() as s:
        card = customers.customer_card(s, customer.id)
    assert [d.title for d in card.open_deals] == ["Big one"]
    assert card.contacts[0].value == "jane@acme.com"
    assert card.next_follow_up is None and card.recent_interactions == []


def test_customer_card_in_one_read_with_its_parts_in_order(db, admin, settings):
    from datetime import timedelta

    import sqlalchemy as sa

    from crm.models import ContactKind, Role, utcnow
    from crm.services import followups

    owner, _ = make_user(db, "Olga Owner", Role.rep)
    customer = add_customer(db, admin, owner_id=owner.id)
    for title in ("First", "Second", "Third"):
        add_deal(db, admin, settings, customer.id, title, amount="12.50")
    with db.transaction() as s:
        customers.add_contact_point(
            s, customer_id=customer.id, kind=ContactKind.phone, value="+49 30 1234567", actor=admin
        )
        for days, note in ((9, "later"), (2, "soonest"), (5, "between")):
            followups.create_follow_up(
                s,
                customer_id=customer.id,
                when=utcnow() + timedelta(days=days),
                actor=admin,
                tz="UTC",
                note=note,
            )
    statements: list[str] = []
    with db.session() as s:
        found = customers.get_customer(s, customer.id)  # as /crm show has it, resolved
        sa.event.listen(s.connection(), "before_cursor_execute", lambda *a: statements.append(a[2]))
        card = customers.customer_card(s, found.id)
    assert len(statements) == 1
    assert card.owner is not None and card.owner.name == "Olga Owner"
    assert [c.kind for c in card.contacts] == [ContactKind.email, ContactKind.phone]
    assert card.contacts[0].value == "jane@acme.com"
    assert [d.title for d in card.open_deals] == ["First", "Second", "Third"]
    assert {(str(d.amount), d.currency) for d in card.open_deals} == {("12.50", "USD")}
    assert card.next_follow_up is not None and card.next_follow_up.note == "soonest"


def test_customer_card_previews_interactions_without_reading_whole_bodies(db, admin):
    from datetime import timedelta

    from crm.models import Channel, Direction, Interaction, utcnow

    customer = add_customer(db, admin)
    now = utcnow()
    with db.transaction() as s:
        for n in range(7):
            s.add(
                Interaction(
                    customer_id=customer.id,
                    channel=Channel.email,
                    direction=Direction.inbound,
                    occurred_at=now - timedelta(days=n),
                    subject=None if n == 0 else f"mail {n}",
                    body=f"body {n} " + "x" * 100_000,
                    deleted_at=now if n == 1 else None,
                )
            )
    with db.session() as s:
        card = customers.customer_card(s, customer.id)
    # the newest five that are not deleted, newest first, each cut to its first characters
    assert [i.subject for i in card.recent_interactions] == [
        None,
        "mail 2",
        "mail 3",
        "mail 4",
        "mail 5",
    ]
    assert card.recent_interactions[0].preview.startswith("body 0 x")
    assert {len(i.preview) for i in card.recent_interactions} == {customers.PREVIEW_CHARS}
    assert card.recent_interactions[0].channel == Channel.email
    assert card.last_touch_at == card.recent_interactions[0].occurred_at


@pytest.mark.parametrize("counting", ["python", "numpy"])
def test_fuzzy_search_scales_past_the_full_scan(db, admin, monkeypatch, counting):
    """With many customers the token index picks candidates; typos and partial words still match
    (candidates are counted in plain Python for a small index, in numpy arrays for a large one)."""
    from crm.services import bulk, search

    monkeypatch.setattr(search, "NUMPY_FROM", 1_000 if counting == "numpy" else 1_000_000)
    search.forget_indexes()

    rows = [
        {"name": f"Person {i:05d} Sample", "company": f"Company {i % 97} Holdings"}
        for i in range(1_500)
    ]
    rows.append({"name": "Priyanka Chatterjee", "company": "Northwind Traders"})
    with db.transaction() as s:
        ids = bulk.insert_customers(s, rows, actor=admin, label="test")
    target = ids[-1]
    with db.session() as s:
        assert customers.find_customers(s, "Priyanka Chaterjee")[0].customer.id == target
        assert customers.find_customers(s, "chatterjee northwind")[0].customer.id == target
        assert customers.find_customers(s, "Northwin")[0].customer.id == target
        assert customers.find_customers(s, "zzzzqqq") == []


def test_search_sees_rows_written_with_old_timestamps(db, admin):
    """Imports and demo data carry old updated_at values; the index must still pick them up."""
    from datetime import UTC, datetime

    from crm.services import bulk

    add_customer(db, admin, "Jane Doe", "jane@acme.com")
    with db.session() as s:
        customers.find_customers(s, "Jane Doe")  # the index is built now
    with db.transaction() as s:
        bulk.insert_customers(
            s,
            [
                {
                    "name": "Old Timer",
                    "company": "Vintage Works",
                    "updated_at": datetime(2020, 1, 1, tzinfo=UTC),
                    "created_at": datetime(2020, 1, 1, tzinfo=UTC),
                }
            ],
            actor=admin,
            label="test",
        )
    with db.session() as s:
        assert customers.find_customers(s, "Old Timer")[0].customer.name == "Old Timer"


def test_merge_moves_the_external_id_of_the_merged_customer(db, admin):
    keep = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    imported = add_customer(db, admin, "J Doe", "j@acme.com")
    with db.transaction() as s:
        row = s.get(Customer, imported.id)
        row.external_id = "SHOP-17"
        s.add(row)
    with db.transaction() as s:
        customers.merge_customers(s, keep_id=keep.id, merge_id=imported.id, actor=admin)
    with db.session() as s:
        assert s.get(Customer, keep.id).external_id == "SHOP-17"


def test_reps_claim_unowned_customers_but_cannot_take_others(db, admin):
    rita, rita_actor = make_user(db, "Rita Rep", Role.rep)
    rob, rob_actor = make_user(db, "Rob Rep", Role.rep)
    _, mia = make_user(db, "Mia Manager", Role.manager)
    unowned = add_customer(db, admin, "Free Agent", "free@agent.com")
    with db.transaction() as s:
        customers.update_customer(
            s, customer_id=unowned.id, changes=CustomerUpdate(owner_id=rita.id), actor=rita_actor
        )
    with db.transaction() as s, pytest.raises(PermissionDenied):
        customers.update_customer(
            s, customer_id=unowned.id, changes=CustomerUpdate(owner_id=rob.id), actor=rob_actor
        )
    with db.transaction() as s, pytest.raises(PermissionDenied):
        customers.create_customer(
            s, actor=rob_actor, customer_in=CustomerCreate(name="X", owner_id=rita.id)
        )
    with db.transaction() as s:
        customers.update_customer(
            s, customer_id=unowned.id, changes=CustomerUpdate(owner_id=rob.id), actor=mia
        )
    with db.session() as s:
        assert s.get(Customer, unowned.id).owner_id == rob.id


def test_unknown_owner_is_a_clear_error(db, admin, settings):
    from crm.services import deals

    customer = add_customer(db, admin)
    with db.transaction() as s, pytest.raises(NotFound, match="no user #999"):
        customers.update_customer(
            s, customer_id=customer.id, changes=CustomerUpdate(owner_id=999), actor=admin
        )
    deal = add_deal(db, admin, settings, customer.id)
    with db.transaction() as s, pytest.raises(NotFound, match="no user #999"):
        deals.update_deal(s, deal_id=deal.id, actor=admin, settings=settings, owner_id=999)


def test_a_merged_away_customers_id_is_never_given_to_a_new_customer(db, admin):
    keep = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    gone = add_customer(db, admin, "J. Doe", "j.doe@acme.com")
    with db.transaction() as s:
        customers.merge_customers(s, keep_id=keep.id, merge_id=gone.id, actor=admin)
    again = add_customer(db, admin, "Someone Else", "someone@else.com")
    assert again.id not in (keep.id, gone.id)
    with db.session() as s:
        merged = s.exec(
            select(AuditEvent).where(AuditEvent.action == "merge", AuditEvent.entity == "customer")
        ).one()
        # The audit trail's merged-away id still names nobody alive.
        assert merged.before["merged"]["id"] == gone.id and s.get(Customer, gone.id) is None


def test_bulk_inserts_never_reuse_a_merged_away_id_either(db, admin):
    from crm.services import bulk

    keep = add_customer(db, admin, "Jane Doe", "jane@acme.com")
    gone = add_customer(db, admin, "J. Doe", "j.doe@acme.com")
    with db.transaction() as s:
        customers.merge_customers(s, keep_id=keep.id, merge_id=gone.id, actor=admin)
    with db.transaction() as s:
        (new_id,) = bulk.insert_customers(s, [{"name": "Imported"}], actor=admin, label="test")
    assert new_id > gone.id
    assert add_customer(db, admin, "After the import", "after@x-corp.com").id > new_id


def test_python_and_numpy_counting_pick_the_same_candidates(db, admin, monkeypatch):
    from crm.services import bulk, search

    words = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"]
    rows = [
        {"name": f"{words[i % 8]} {words[(i * 3) % 8]} {i}", "company": f"{words[(i * 5) % 8]} ltd"}
        for i in range(2_000)
    ]
    with db.transaction() as s:
        bulk.insert_customers(s, rows, actor=admin, label="test")
    index = search.NameIndex()
    with db.session() as s:
        index.refresh(s)
    built = index._index
    for query in ("acme", "globx initech", "wonka stark ltd", "hool"):
        groups = [search._similar_words(built.words(), t) for t in set(query.split())]

        def score(pos: int, groups: list[set[str]] = groups) -> int:
            return sum(bool(set(built.keys[pos].split()) & g) for g in groups)

        monkeypatch.setattr(search, "NUMPY_FROM", 1_000_000)
        in_python = index._candidates(built, query)
        monkeypatch.setattr(search, "NUMPY_FROM", 1)
        in_numpy = index._candidates(built, query)
        assert len(in_python) == len(in_numpy) <= search.CANDIDATES
        # Both rank by score; names tied at the cut may fall either way in numpy.
        assert [score(p) for p in in_python] == [score(p) for p in in_numpy]
        cut = score(in_python[-1])
        assert {p for p in in_python if score(p) > cut} == {p for p in in_numpy if score(p) > cut}
