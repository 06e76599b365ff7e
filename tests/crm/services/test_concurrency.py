"""Two processes moving the same deal at once never corrupt its stage history."""

from __future__ import annotations

import multiprocessing as mp

from crm.config import Settings
from crm.db import Database
from crm.services import deals
from crm.services.actor import Actor
from tests.factories import add_customer, add_deal

MOVES_PER_WORKER = 15


def _worker(url: str, deal_id: int, name: str, start: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    db = Database(url)
    actor = Actor.system(name)
    stages = settings.open_stages
    start.wait()
    for _ in range(MOVES_PER_WORKER):
        with db.transaction() as session:
            current = deals.get_deal(session, deal_id, for_update=True).stage
            target = stages[(stages.index(current) + 1) % len(stages)]
            deals.move_deal(session, deal_id=deal_id, stage=target, actor=actor, settings=settings)
    db.dispose()


def test_concurrent_moves_keep_one_history_chain(db, admin, settings):
    customer = add_customer(db, admin)
    deal = add_deal(db, admin, settings, customer.id)
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    workers = [ctx.Process(target=_worker, args=(db.url, deal.id, f"worker-{i}", start)) for i in range(2)]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    with db.session() as s:
        history = deals.stage_history(s, deal.id)
        final = deals.get_deal(s, deal.id)
    assert len(history) == 1 + 2 * MOVES_PER_WORKER
    assert all(a.to_stage == b.from_stage for a, b in zip(history, history[1:], strict=False))
    assert history[-1].to_stage == final.stage
    assert {h.changed_by for h in history[1:]} == {"worker-0", "worker-1"}
