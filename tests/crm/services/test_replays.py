"""Signed requests are remembered once, and forgotten when too old to come again."""

from __future__ import annotations

from datetime import timedelta

from crm.models import utcnow
from crm.services import replays


def test_a_request_is_new_once_and_old_ones_are_forgotten(db):
    now = utcnow()
    with db.transaction() as session:
        assert replays.first_sighting(session, key="v0=abc", now=now - timedelta(minutes=20))
        assert replays.first_sighting(session, key="v0=def", now=now)
    with db.transaction() as session:
        assert not replays.first_sighting(session, key="v0=abc", now=now)
        assert not replays.first_sighting(session, key="v0=def", now=now)
        assert replays.forget_before(session, now - replays.REMEMBER) == 1
    with db.transaction() as session:
        # Forgotten: it could not pass the signature check any more, so it may be new again.
        assert replays.first_sighting(session, key="v0=abc", now=now)
        assert not replays.first_sighting(session, key="v0=def", now=now)
