"""Undoing a merge, and remembering that two customers are not duplicates.

A merge (``customers.merge_with_record``) records the merged-away customer as it was, the
kept one before and after, and the ids of every record that moved. Undoing it puts the
merged-away customer back under its old id, sends the moved records back, and gives the kept
customer back the fields the merge changed (a field someone edited since keeps the edit).
What was recorded after the merge goes to the restored customer where it can tell (an
interaction written by one of its email addresses, or about one of its deals, a follow-up on
one of its deals) and stays with the kept customer otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm.models import (
    ContactKind,
    ContactPoint,
    Customer,
    CustomerMerge,
    CustomerStatus,
    DuplicateDismissal,
    FollowUp,
    Interaction,
    utcnow,
)
from crm.services.actor import Actor
from crm.services.audit import record_event, snapshot
from crm.services.customers import MERGED_RECORDS, get_customer
from crm.services.errors import CRMError, NotFound
from crm.services.normalise import storable_id

# Fields a merge may change on the kept customer, and undo gives back.
_KEPT_FIELDS = (
    "company",
    "domain",
    "owner_id",
    "tags",
    "status",
    "created_at",
    "external_id",
    "street",
    "city",
    "postcode",
    "country",
)
_TIMES = ("created_at", "updated_at")


def get_merge(session: Session, merge_id: int) -> CustomerMerge:
    merge = session.get(CustomerMerge, merge_id) if storable_id(merge_id) else None
    if merge is None:
        raise NotFound(
            f"There is no merge #{merge_id}.",
            hint="The merge id is printed by `customer merge` and kept in the audit trail.",
        )
    return merge


def _value(name: str, value: Any) -> Any:
    if name in _TIMES and isinstance(value, str):
        return datetime.fromisoformat(value)
    return CustomerStatus(value) if name == "status" else value


def unmerge_customers(session: Session, *, merge_id: int, actor: Actor) -> CustomerMerge:
    """Undo merge ``merge_id``: both customers back as they were, with what moved."""
    actor.require_manager("undo a merge")
    merge = get_merge(session, merge_id)
    if merge.undone_at is not None:
        raise CRMError(
            f"Merge #{merge_id} was undone already ({merge.undone_at:%Y-%m-%d %H:%M} UTC, "
            f"by {merge.undone_by})."
        )
    kept = get_customer(session, merge.kept_id)
    if session.get(Customer, merge.merged_id) is not None:
        raise CRMError(f"Customer #{merge.merged_id} exists already; the merge cannot be undone.")
    before = snapshot(kept)
    old = merge.merged_before or {}
    kept_before, kept_after = merge.kept_before or {}, (merge.moved or {}).get("kept_after") or {}
    current = snapshot(kept) or {}
    # The kept customer gets back what the merge changed, unless someone changed it since.
    for name in _KEPT_FIELDS:
        if name in kept_before and current.get(name) == kept_after.get(name):
            setattr(kept, name, _value(name, kept_before[name]))
    if old.get("external_id") and kept.external_id == old["external_id"]:
        kept.external_id = None
    session.add(kept)
    session.flush()
    restored = Customer(**{k: _value(k, v) for k, v in old.items()})
    restored.id = merge.merged_id
    session.add(restored)
    session.flush()
    moved = merge.moved or {}
    back: dict[str, int] = {}
    for kind, model in MERGED_RECORDS.items():
        ids = moved.get(kind) or []
        if ids:
            result = session.execute(
                sa.update(model)
                .where(col(model.id).in_(ids), model.customer_id == kept.id)
                .values(customer_id=restored.id)
            )
            back[kind] = result.rowcount or 0  # type: ignore[attr-defined]
    back |= _since_merge(session, merge, kept_id=kept.id, restored_id=restored.id)  # type: ignore[arg-type]
    merge.undone_at = utcnow()
    merge.undone_by = actor.name[:200]
    session.add(merge)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="unmerge",
        entity="customer",
        entity_id=kept.id,
        before=before,
        after={
            "merge_id": merge.id,
            "kept": snapshot(kept),
            "restored": snapshot(restored),
            "moved_back": back,
        },
    )
    return merge


def _since_merge(
    session: Session, merge: CustomerMerge, *, kept_id: int, restored_id: int
) -> dict[str, int]:
    """Records made after the merge that belong to the restored customer, moved to it."""
    deals = (merge.moved or {}).get("deals") or []
    cp = ContactPoint.__table__.c  # type: ignore[attr-defined]
    i = Interaction.__table__.c  # type: ignore[attr-defined]
    f = FollowUp.__table__.c  # type: ignore[attr-defined]
    emails = list(
        session.execute(
            sa.select(cp.value).where(
                cp.customer_id == restored_id, cp.kind == ContactKind.email.value
            )
        ).scalars()
    )
    # Theirs: on their deals, or written by one of their addresses (the author line is
    # sealed, so it is read and compared here, over the records made since the merge only).
    since = session.execute(
        sa.select(i.id, i.deal_id, i.author).where(
            i.customer_id == kept_id, i.created_at > merge.merged_at
        )
    ).all()
    moving = [
        row.id
        for row in since
        if (deals and row.deal_id in deals)
        or (row.author and any(e in row.author.lower() for e in emails))
    ]
    counts: dict[str, int] = {}
    if deals or emails:
        result = session.execute(
            sa.update(Interaction.__table__)  # type: ignore[attr-defined]
            .where(i.id.in_(moving))
            .values(customer_id=restored_id)
        )
        counts["interactions_since"] = result.rowcount or 0  # type: ignore[attr-defined]
    if deals:
        result = session.execute(
            sa.update(FollowUp.__table__)  # type: ignore[attr-defined]
            .where(f.customer_id == kept_id, f.created_at > merge.merged_at, f.deal_id.in_(deals))
            .values(customer_id=restored_id)
        )
        counts["follow_ups_since"] = result.rowcount or 0  # type: ignore[attr-defined]
    return counts


def merges_of(session: Session, customer_id: int) -> list[CustomerMerge]:
    """Merges into a customer, newest first."""
    stmt = (
        select(CustomerMerge)
        .where(CustomerMerge.kept_id == customer_id)
        .order_by(col(CustomerMerge.id).desc())
    )
    return list(session.exec(stmt))


def dismiss_duplicate(
    session: Session, *, first_id: int, second_id: int, actor: Actor
) -> DuplicateDismissal:
    """Remember that two customers are different people: never suggested as duplicates again."""
    actor.require_write()
    if first_id == second_id:
        raise CRMError("A customer is always the same as itself; give two different customers.")
    low, high = sorted((get_customer(session, first_id).id, get_customer(session, second_id).id))  # type: ignore[type-var]
    existing = session.exec(
        select(DuplicateDismissal).where(
            DuplicateDismissal.low_id == low, DuplicateDismissal.high_id == high
        )
    ).first()
    if existing is not None:
        return existing
    dismissal = DuplicateDismissal(low_id=low, high_id=high, dismissed_by=actor.name[:200])  # type: ignore[arg-type]
    session.add(dismissal)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="not_duplicate",
        entity="customer",
        entity_id=low,
        after={"customers": [low, high]},
    )
    return dismissal
