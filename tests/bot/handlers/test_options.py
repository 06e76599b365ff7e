"""Type-ahead options for the forms."""

from __future__ import annotations


def test_customer_options_are_capped_at_100(slack, db, admin):
    with db.transaction() as session:
        from crm.models import Customer
        from crm.services.normalise import name_key

        for i in range(130):
            session.add(Customer(name=f"Vandelay {i}", name_key=name_key(f"Vandelay {i}")))
    status, found = slack.options("customer_options", "vandelay")
    assert status == 200 and 0 < len(found["options"]) <= 100
    assert slack.options("customer_options", "")[1] == {"options": []}
