"""What erasure on request leaves behind: keyed hashes of forgotten addresses, and the store's
own key for them when none is configured."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import ContactKind, SealedText, enum_type, utc_column, utcnow


# An address or number of a person erased on request, as an HMAC only (never the value), so
# that mail from it does not create the person again.
class ForgottenContact(SQLModel, table=True):
    __tablename__ = "forgotten_contacts"
    __table_args__ = (sa.UniqueConstraint("kind", "digest", name="uq_forgotten_contacts"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: ContactKind = Field(sa_type=enum_type(ContactKind, 16))
    digest: str = Field(sa_type=sa.String(64))
    forgotten_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


# A random key made by the store itself for keyed hashes, used when CRM_HMAC_KEY is not set.
class StoreKey(SQLModel, table=True):
    __tablename__ = "store_keys"

    name: str = Field(primary_key=True, sa_type=sa.String(64))
    value: str = Field(sa_type=SealedText(128))  # sealed when keys are set
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
