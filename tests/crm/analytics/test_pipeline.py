from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from crm.analytics import followups, pipeline
from crm.models import (
    Channel,
    DealStageChange,
    FollowUp,
    InteractionCreate,
    Role,
    utcnow,
)
from crm.services import deals, interactions
from tests.conftest import make_user
from tests.factories import add_customer, add_deal


def _move(db, actor, settings, deal_id, *stages):
    with db.transaction() as session:
        for stage in stages:
            if stage == "lost":
                deals.lose_deal(
                    session, deal_id=deal_id, reason="price", actor=actor, settings=settings
                )
            else:
                deals.move_deal(
                    session, deal_id=deal_id, stage=stage, actor=actor, settings=settings
                )


def test_stage_counts_values_forecast_and_conversion(db, settings, admin):
    ada, ada_actor = make_user(db, "Ada", Role.rep)
    bob, bob_actor = make_user(db, "Bob", Role.rep)
    c = add_customer(db, admin)
    add_deal(db, ada_actor, settings, c.id, amount=Decimal("1000"))  # lead
    d2 = add_deal(db, ada_actor, settings, c.id, amount=Decimal("2000"))
    d3 = add_deal(db, bob_actor, settings, c.id, amount=Decimal("500"), currency="EUR")
    d4 = add_deal(db, bob_actor, settings, c.id, amount=Decimal("300"))
    d5 = add_deal(db, ada_actor, settings, c.id, amount=Decimal("700"))
    _move(db, ada_actor, settings, d2.id, "qualified", "proposal")
    _move(db, bob_actor, settings, d3.id, "proposal")  # skips qualified
    _move(db, bob_actor, settings, d4.id, "qualified", "won")
    _move(db, ada_actor, settings, d5.id, "lost")

    with db.session() as session:
        report = pipeline.pipeline_report(session, settings=settings)

    by_stage = {s.stage: s for s in report.stages}
    assert [s.stage for s in report.stages] == settings.open_stages
    assert by_stage["lead"].count == 1 and by_stage["lead"].value == {"USD": Decimal("1000.00")}
    assert by_stage["proposal"].count == 2
    assert by_stage["proposal"].value == {"EUR": Decimal("500.00"), "USD": Decimal("2000.00")}
    # lead 10 %, proposal 50 %: 100 + 1000 USD, 250 EUR
    assert report.forecast == {"USD": Decimal("1100.00"), "EUR": Decimal("250.00")}
    assert report.open_value == {"USD": Decimal("3000.00"), "EUR": Decimal("500.00")}
    # All 5 reached lead; d2, d3, d4 reached qualified or later; d2, d3, d4(won) reached proposal.
    assert by_stage["lead"].reached == 5
    assert by_stage["lead"].conversion_to_next == 3 / 5
    assert by_stage["qualified"].reached == 3
    assert by_stage["proposal"].reached == 3 - 1 + 1  # d4 skipped proposal but won
    assert (
        by_stage["negotiation"].reached == 1 and by_stage["negotiation"].conversion_to_next == 1.0
    )
    assert report.won == 1 and report.lost == 1 and report.win_rate == 0.5
    rates = {r.owner_name: (r.won, r.lost) for r in report.win_rates}
    assert rates == {"Bob": (1, 0), "Ada": (0, 1)}
    assert report.win_rates[0].owner_name == "Bob"

    with db.session() as session:
        mine = pipeline.pipeline_report(session, settings=settings, owner_id=ada.id)
    assert mine.open_deals == 2
    assert {s.stage: s.count for s in mine.stages}["proposal"] == 1
    assert mine.win_rate == 0.0


def test_median_days_in_stage_uses_finished_stays(db, settings, admin):
    c = add_customer(db, admin)
    ids = [add_deal(db, admin, settings, c.id).id for _ in range(4)]
    for deal_id in ids:
        _move(db, admin, settings, deal_id, "qualified")
    start = utcnow() - timedelta(days=100)
    # Time in lead: 2, 4, 6, 10 days -> median 5.
    with db.transaction() as session:
        for deal_id, days in zip(ids, (2, 4, 6, 10), strict=True):
            changes = (
                session.exec(
                    sa.select(DealStageChange)
                    .where(DealStageChange.deal_id == deal_id)
                    .order_by(DealStageChange.id)
                )
                .scalars()
                .all()
            )
            changes[0].changed_at = start
            changes[1].changed_at = start + timedelta(days=days)
            session.add_all(changes)
    with db.session() as session:
        medians = pipeline.median_days_in_stage(session)
    assert abs(medians["lead"] - 5.0) < 1e-6
    assert "qualified" not in medians  # nobody has left qualified yet
    # Odd count: drop the longest stay -> median of 2, 4, 6 is 4.
    _move(db, admin, settings, ids[3], "lost")
    with db.transaction() as session:
        session.execute(sa.delete(DealStageChange).where(DealStageChange.deal_id == ids[3]))
    with db.session() as session:
        assert abs(pipeline.median_days_in_stage(session)["lead"] - 4.0) < 1e-6


def test_empty_pipeline_reports_zero_without_dividing_by_zero(db, settings):
    with db.session() as session:
        report = pipeline.pipeline_report(session, settings=settings)
    assert report.open_deals == 0 and report.forecast == {} and report.win_rate is None
    assert all(s.conversion_to_next is None and s.median_days is None for s in report.stages)


def _rotting(session, settings, now, owner_id=None):
    records = pipeline.deal_records(session, now, owner_id=owner_id)
    return followups.rotting_deals(now, records, pipeline.rotting_limits(settings))


def test_rotting_deals_respect_activity_and_next_steps(db, settings, admin):
    rep, rep_actor = make_user(db, "Rita", Role.rep)
    names = ["Quiet", "Busy", "Planned", "Fresh", "Deal call", "Deal step", "Deleted", "Older"]
    made = {}
    for n, name in enumerate(names):
        customer = add_customer(db, admin, name=f"{name} Co", email=f"a@c{n}.com")
        made[name] = add_deal(db, rep_actor, settings, customer.id, title=name)
    now = utcnow()

    def log(name, days, **extra):
        return interactions.record_interaction(
            session,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=made[name].customer_id,
                channel=Channel.call,
                occurred_at=now - timedelta(days=days),
                **extra,
            ),
        )

    with db.transaction() as session:
        for name, deal in made.items():
            if name != "Fresh":  # Fresh entered its stage today
                deal.stage_entered_at = now - timedelta(days=40 if name == "Older" else 30)
                session.add(deal)
        log("Busy", 2)  # any interaction with the customer resets the clock
        log("Quiet", 20)  # an old one does not save the deal
        log("Deal call", 2, deal_id=made["Deal call"].id)
        log("Deleted", 1, external_id="gone", source="imap")
        log("Deleted", 25)
        session.add(
            FollowUp(
                customer_id=made["Planned"].customer_id, owner_id=rep.id, due_at=now + timedelta(3)
            )
        )
        session.add(
            FollowUp(
                customer_id=made["Deal step"].customer_id,
                deal_id=made["Deal step"].id,
                owner_id=rep.id,
                due_at=now + timedelta(days=1),
            )
        )
        # A past-due follow-up is not a next step.
        session.add(
            FollowUp(
                customer_id=made["Quiet"].customer_id, owner_id=rep.id, due_at=now - timedelta(3)
            )
        )
        # A deleted interaction does not count as activity.
        interactions.mark_interaction_deleted(
            session, source="imap", external_id="gone", actor=admin
        )

    now = utcnow()  # after the setup: rows made later than ``now`` do not count yet
    with db.session() as session:
        rotting = _rotting(session, settings, now)
        mine = _rotting(session, settings, now, owner_id=rep.id)
        nobody = _rotting(session, settings, now, owner_id=rep.id + 100)
    # Longest idle first; each says how long, in which stage, and what the stage allows.
    assert [f.deal_id for f in rotting] == [made[n].id for n in ("Older", "Deleted", "Quiet")]
    assert "40 days in lead (the stage allows 14)" in rotting[0].why
    assert "25 days" in rotting[1].why and "20 days" in rotting[2].why
    assert mine == rotting and nobody == []


def test_stages_without_a_limit_and_closed_deals_never_rot(db, settings, admin):
    c = add_customer(db, admin)
    lead = add_deal(db, admin, settings, c.id, title="Lead")
    won = add_deal(db, admin, settings, c.id, title="Won")
    _move(db, admin, settings, won.id, "won")
    later = utcnow() + timedelta(days=400)
    with db.session() as session:
        records = pipeline.deal_records(session, later)
        assert [r.id for r in records] == [lead.id]  # only open deals are loaded
        assert _rotting(session, settings, later)[0].deal_id == lead.id
        limits = pipeline.rotting_limits(settings) | {"lead": 0}
        assert followups.rotting_deals(later, records, limits) == []
    assert "won" not in pipeline.rotting_limits(settings)
