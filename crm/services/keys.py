"""Keys: keyed hashes for exact lookups on sealed values, and key rotation.

- ``contact_digest`` is the blind index of a contact point: an HMAC-SHA256 of its kind and
  normalised value under the index key (``CRM_HMAC_KEY``, else a random key the store keeps,
  itself sealed when encryption keys are set). ``customer find`` and mail capture look an
  address up by it, so they need no decryption and use an ordinary unique index.
- ``rotate_batch`` brings one batch of one sealed column under the first key of
  ``CRM_ENCRYPTION_KEYS``: values stored plain are sealed, values sealed with an older key are
  opened and sealed again. What is pending is read off the stored form itself, so rotation
  needs no bookkeeping: stopped at any point, it goes on where values still need it, and
  values written meanwhile are already under the first key. A row changed by someone else
  between the read and the write is left to them (the write compares the old stored form).
- ``status`` counts the values of every sealed column by key (or plain).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

from crm import crypto
from crm.models import ContactKind, ContactPoint, StoreKey, utcnow
from crm.models.base import SEAL_PREFIX, SealedBytes, SealedJSON, SealedText, open_bytes
from crm.services.actor import Actor
from crm.services.audit import record_event
from crm.services.errors import CRMError
from crm.services.normalise import normalise_email, normalise_phone

STORE_KEY_NAME = "contact-hmac"
_INFO_KEY = "crm.index_key"
ROTATE_BATCH = 5_000
_HEAD = len(SEAL_PREFIX) + 9  # "enc1:" + 8 hex digits + ":"
_MARK = _HEAD + 48  # the prefix and a token's version, time stamp and random IV


# ---------------------------------------------------------------- keyed hashes


def index_key(session: Session) -> bytes:
    """The key of keyed hashes: ``CRM_HMAC_KEY`` when set, else a random key the store makes
    once and keeps (sealed when encryption keys are set). Read once per session."""
    cached = session.info.get(_INFO_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    configured = crypto.configured_index_key()
    if configured:
        key = configured.encode("utf-8")
    else:
        key = store_key(session)
    session.info[_INFO_KEY] = key
    return key


def store_key(session: Session) -> bytes:
    """The store's own random HMAC key, made on first use."""
    table = StoreKey.__table__  # type: ignore[attr-defined]
    found = session.execute(sa.select(table.c.value).where(table.c.name == STORE_KEY_NAME)).scalar()
    if found is None:
        dialect = session.get_bind().dialect.name
        insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        session.execute(
            insert.values(
                name=STORE_KEY_NAME, value=secrets.token_hex(32), created_at=utcnow()
            ).on_conflict_do_nothing(index_elements=["name"])
        )
        found = session.execute(
            sa.select(table.c.value).where(table.c.name == STORE_KEY_NAME)
        ).scalar_one()
    return str(found).encode("utf-8")


def normal_contact(kind: ContactKind | str, value: str) -> str:
    """The form a contact value is stored and hashed in (a value that does not parse, from
    an older version, is hashed as stored)."""
    kind = ContactKind(kind)
    try:
        if kind == ContactKind.email:
            return normalise_email(value)
        if kind == ContactKind.phone:
            return normalise_phone(value)
    except CRMError:
        pass
    return value.strip().lower() if kind == ContactKind.email else value.strip()


def keyed_digest(key: bytes, kind: ContactKind | str, value: str) -> str:
    """HMAC-SHA256 of ``kind:normalised value`` (hex)."""
    kind = ContactKind(kind)
    message = f"{kind.value}:{normal_contact(kind, value)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def contact_digest(session: Session, kind: ContactKind | str, value: str) -> str:
    """The blind index of one contact value."""
    return keyed_digest(index_key(session), kind, value)


def contact_digests(
    session: Session, kind: ContactKind | str, values: Iterable[str]
) -> dict[str, str]:
    """digest -> value, for many values of one kind (values that do not normalise are left out)."""
    key = index_key(session)
    out: dict[str, str] = {}
    for value in values:
        if not value:
            continue
        out[keyed_digest(key, kind, value)] = value
    return out


# ---------------------------------------------------------------- sealed columns


@dataclass(frozen=True)
class SealedColumn:
    table: sa.Table
    column: sa.Column[Any]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    @property
    def binary(self) -> bool:
        return isinstance(self.column.type, SealedBytes)

    @property
    def key(self) -> sa.Column[Any]:
        (pk,) = self.table.primary_key.columns
        return pk

    def stored(self) -> Any:
        """The column as stored (no decryption)."""
        return sa.type_coerce(self.column, sa.LargeBinary() if self.binary else sa.Text())

    def head(self, text: str) -> Any:
        return text.encode("ascii") if self.binary else text


def sealed_columns() -> list[SealedColumn]:
    out = []
    for table in SQLModel.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, SealedText | SealedBytes | SealedJSON):
                out.append(SealedColumn(table, column))
    return out


def _require_keyring() -> crypto.Keyring:
    ring = crypto.keyring()
    if ring is None:
        raise CRMError(
            "no encryption keys are set: set CRM_ENCRYPTION_KEYS (`crmbot keys generate` "
            "makes a key) first"
        )
    return ring


@dataclass
class ColumnStatus:
    column: str
    plain: int = 0
    by_key: dict[str, int] = field(default_factory=dict)

    @property
    def sealed(self) -> int:
        return sum(self.by_key.values())


def status(session: Session) -> list[ColumnStatus]:
    """Every sealed column's values: how many are stored plain, how many under each key."""
    out = []
    for sc in sealed_columns():
        stored = sc.stored()
        prefix = sa.func.substr(stored, 1, len(SEAL_PREFIX))
        is_sealed = prefix == sc.head(SEAL_PREFIX)
        row = ColumnStatus(sc.name)
        row.plain = int(
            session.execute(
                sa.select(sa.func.count())
                .select_from(sc.table)
                .where(stored.is_not(None), sa.not_(is_sealed))
            ).scalar_one()
        )
        kid = sa.func.substr(stored, len(SEAL_PREFIX) + 1, 8)
        for key, count in session.execute(
            sa.select(kid, sa.func.count()).select_from(sc.table).where(is_sealed).group_by(kid)
        ):
            name = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
            row.by_key[name] = int(count)
        out.append(row)
    return out


@dataclass
class RotateBatch:
    column: str
    rewritten: int = 0
    skipped: int = 0  # changed by another writer meanwhile (already under the first key)
    last_key: Any = None

    @property
    def done(self) -> bool:
        return self.last_key is None


def rotate_batch(
    session: Session,
    column: SealedColumn,
    *,
    actor: Actor,
    after: Any = None,
    batch: int = ROTATE_BATCH,
) -> RotateBatch:
    """Seal, under the first key, the next ``batch`` values of ``column`` (by primary key,
    after ``after``) that are plain or under another key. ``last_key`` is where to go on from;
    None when the column is done. Admins (and the scheduler)."""
    actor.require_admin("rotate encryption keys")
    ring = _require_keyring()
    stored = column.stored()
    under_first = sa.func.substr(stored, 1, _HEAD) == column.head(f"{SEAL_PREFIX}{ring.primary}:")
    where = [stored.is_not(None), sa.not_(under_first)]
    if after is not None:
        where.append(column.key > after)
    rows = session.execute(
        sa.select(column.key, stored).where(*where).order_by(column.key).limit(batch)
    ).all()
    result = RotateBatch(column.name)
    if not rows:
        return result
    updates = []
    for key, old in rows:
        raw = bytes(old) if column.binary else str(old).encode("utf-8")
        plain = open_bytes(raw) if raw.startswith(SEAL_PREFIX.encode()) else raw
        new = ring.seal(plain)
        updates.append({"k": key, "old": old, "new": new if column.binary else new.decode("ascii")})
    updates_by_key = {u["k"]: u["new"][:_MARK] for u in updates}
    kind = sa.LargeBinary() if column.binary else sa.Text()
    statement = (
        sa.update(column.table)
        .where(column.key == sa.bindparam("k"), stored == sa.bindparam("old", type_=kind))
        .values({column.column.name: sa.bindparam("new", type_=kind)})
    )
    session.execute(statement, updates)
    # Which rows took the new value (a sealed value's start holds its random IV): the others
    # were changed by another writer between the read and the write.
    start = sa.func.substr(stored, 1, _MARK)
    took = {
        key
        for key, head in session.execute(
            sa.select(column.key, start).where(column.key.in_([u["k"] for u in updates]))
        )
        if head == updates_by_key[key]
    }
    result.rewritten = len(took)
    result.skipped = len(updates) - len(took)
    result.last_key = rows[-1][0]
    record_event(
        session,
        actor=actor,
        action="keys.rotate",
        entity="store",
        after={
            "column": column.name,
            "key": ring.primary,
            "rewritten": result.rewritten,
            "skipped": result.skipped,
        },
    )
    return result


def rotate(
    open_session: Any, *, actor_for: Any, batch: int = ROTATE_BATCH
) -> Iterator[RotateBatch]:
    """Rotate every sealed column, one batch per transaction (``open_session`` gives a write
    unit, ``actor_for(session)`` the actor); yields each batch done."""
    for column in sealed_columns():
        after = None
        while True:
            with open_session() as session:
                done = rotate_batch(
                    session, column, actor=actor_for(session), after=after, batch=batch
                )
            if done.done:
                break
            after = done.last_key
            yield done


def reindex_batch(
    session: Session, *, actor: Actor, after: int = 0, batch: int = ROTATE_BATCH
) -> tuple[int, int | None]:
    """Recompute the keyed hashes of the next ``batch`` contact points (after a new
    ``CRM_HMAC_KEY``); returns (changed, last id or None when done)."""
    actor.require_admin("rebuild the contact index")
    table = ContactPoint.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        sa.select(table.c.id, table.c.kind, table.c.value, table.c.digest)
        .where(table.c.id > after)
        .order_by(table.c.id)
        .limit(batch)
    ).all()
    if not rows:
        return 0, None
    key = index_key(session)
    changed = [
        {"k": row.id, "d": new}
        for row in rows
        if (new := keyed_digest(key, row.kind, row.value)) != row.digest
    ]
    if changed:
        session.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("k"))
            .values(digest=sa.bindparam("d")),
            changed,
        )
        record_event(
            session,
            actor=actor,
            action="keys.reindex",
            entity="store",
            after={"changed": len(changed)},
        )
    return len(changed), rows[-1].id
