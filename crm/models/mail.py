"""Mail capture's additions to the schema.

Threading looks up earlier mails by Message-ID (``In-Reply-To`` / ``References``) whatever
mailbox stored them, so interactions need an index on ``external_id`` alone; the unique
(source, external_id) constraint cannot serve that lookup because ``source`` leads it.
"""

from __future__ import annotations

import sqlalchemy as sa

from crm.models.interaction import Interaction

interactions_external_id_index = sa.Index(
    "ix_interactions_external_id",
    Interaction.__table__.c.external_id,  # type: ignore[attr-defined]
)
