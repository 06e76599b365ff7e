"""Rows staged in a scratch SQLite file, copied into the store inside one write unit."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from crm.models import CustomerSegment
from crm.services import bulk


def test_staged_rows_are_copied_into_the_store_in_its_write_unit_and_the_file_goes(db):
    if db.dialect != "sqlite":
        with pytest.raises(ValueError), db.transaction(attach={"stage": "x.db"}):
            pass
        return
    stage = bulk.Stage()
    names = ("customer_id", "recency_score", "frequency_score", "monetary_score", "rfm_segment")
    stage.write("customer_segments", names, [(7, 5, 4, 3, "Champions"), (9, 1, 1, 1, "Lost")])
    with db.transaction(attach={"stage": stage.path}) as session:
        bulk.copy_staged(session, "stage", "customer_segments", names, {"run_id": 42})
        inside = session.execute(sa.text("SELECT count(*) FROM stage.customer_segments")).one()
        assert inside == (2,)
    with db.session() as session:
        rows = session.execute(
            sa.select(
                CustomerSegment.run_id, CustomerSegment.customer_id, CustomerSegment.rfm_segment
            ).order_by(CustomerSegment.customer_id)
        ).all()
        assert [tuple(r) for r in rows] == [(42, 7, "Champions"), (42, 9, "Lost")]
        # Detached when the write unit ended.
        with pytest.raises(sa.exc.OperationalError):
            session.execute(sa.text("SELECT count(*) FROM stage.customer_segments"))
    stage.close()
    assert not os.path.exists(stage.path)


def test_a_failed_write_unit_with_a_stage_copies_nothing(db):
    if db.dialect != "sqlite":
        pytest.skip("stages are for SQLite's one writer at a time")
    stage = bulk.Stage()
    names = ("customer_id", "recency_score", "frequency_score", "monetary_score", "rfm_segment")
    stage.write("customer_segments", names, [(7, 5, 4, 3, "Champions")])
    with pytest.raises(RuntimeError), db.transaction(attach={"stage": stage.path}) as session:
        bulk.copy_staged(session, "stage", "customer_segments", names, {"run_id": 1})
        raise RuntimeError("disk full")
    with db.session() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(CustomerSegment)).one() == (
            0,
        )
    stage.close()
