"""``campaign create --target uplift --budget N``: learned from an earlier campaign's responses."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import select

from crm.models import Campaign, CampaignMember, Channel, Customer, InteractionCreate, utcnow
from crm.services import campaigns as svc
from crm.services import interactions as interaction_svc
from tests.factories import add_customer


def _buy(db, admin, customer_id, when):
    with db.transaction() as s:
        interaction_svc.record_interaction(
            s,
            actor=admin,
            interaction_in=InteractionCreate(
                customer_id=customer_id,
                channel=Channel.purchase,
                amount=40,
                currency="USD",
                occurred_at=when,
            ),
        )


def test_uplift_targeting_keeps_the_customers_the_last_campaign_moved(db, admin, crmbot, tmp_path):
    now = utcnow()
    start = now - timedelta(days=30)
    buyers = [
        add_customer(db, admin, name=f"Buyer {i}", email=f"b{i}@buyers{i}.com").id
        for i in range(80)
    ]
    others = [
        add_customer(db, admin, name=f"Other {i}", email=f"o{i}@others{i}.com").id
        for i in range(80)
    ]
    with db.transaction() as s:  # they were customers long before the earlier campaign
        s.execute(sa.update(Customer).values(created_at=start - timedelta(days=400)))
    for cid in buyers:  # earlier customers who bought once before
        _buy(db, admin, cid, start - timedelta(days=60))
    with db.transaction() as s:
        svc.create_campaign(
            s,
            name="autumn",
            customer_ids=buyers + others,
            audience={"filter": "all"},
            subject="Hi",
            template="Hello",
            holdout=0.5,
            window_days=14,
            actor=admin,
            seed=1,
        )
        svc.start_sending(s, name="autumn", actor=admin, now=start)
    with db.session() as s:
        arm = dict(s.exec(select(CampaignMember.customer_id, CampaignMember.arm)).all())
    # Mailed past buyers all came back; everyone else sometimes, mailed or not.
    for n, cid in enumerate(buyers + others):
        if (cid in buyers and arm[cid] == "treatment") or n % 4 == 0:
            _buy(db, admin, cid, start + timedelta(days=2))
    template = tmp_path / "t.j2"
    template.write_text("Subject: Again\nHello {{ customer.name }}\n")
    code, out, err = crmbot(
        "campaign",
        "create",
        "winter",
        "--filter",
        "status=lead",
        "--template",
        str(template),
        "--target",
        "uplift",
        "--budget",
        "40",
        "--holdout",
        "10%",
        "--json",
    )
    assert code == 0, err
    with db.session() as s:
        winter = s.exec(select(Campaign).where(Campaign.name == "winter")).one()
        picked = s.exec(
            select(CampaignMember.customer_id).where(CampaignMember.campaign_id == winter.id)
        ).all()
    assert len(picked) == 40
    assert sum(1 for cid in picked if cid in buyers) >= 36
    assert winter.audience["target"] == "uplift" and winter.audience["model"]


def test_uplift_targeting_without_earlier_responses_is_refused(db, admin, crmbot, tmp_path):
    for i in range(5):
        add_customer(db, admin, name=f"P {i}", email=f"p{i}@x{i}.com")
    template = tmp_path / "t.j2"
    template.write_text("Subject: Again\nHello\n")
    code, out, err = crmbot(
        "campaign",
        "create",
        "winter",
        "--filter",
        "status=lead",
        "--template",
        str(template),
        "--target",
        "uplift",
        "--budget",
        "3",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "needs at least" in err
    code, out, err = crmbot(
        "campaign",
        "create",
        "winter",
        "--filter",
        "status=lead",
        "--template",
        str(template),
        "--budget",
        "3",
    )
    assert code == 2 and "go together" in err
    with db.session() as s:
        assert s.exec(select(Campaign)).all() == []
