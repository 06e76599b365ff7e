"""Customers and the ways to reach them (contact points)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import (
    NEVER_REUSE_IDS,
    ContactKind,
    SealedText,
    CustomerStatus,
    enum_type,
    json_column,
    utc_column,
    utcnow,
)


# Fields shared by every Customer shape.
class CustomerBase(SQLModel):
    name: str = Field(sa_type=sa.String(200))
    company: str | None = Field(default=None, sa_type=sa.String(200))
    domain: str | None = Field(default=None, sa_type=sa.String(253))
    status: CustomerStatus = Field(
        default=CustomerStatus.lead, sa_type=enum_type(CustomerStatus, 16)
    )
    owner_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    # The postal address: one line for the street, then city, postcode and country.
    # (sealed: encrypted at rest when keys are set; the country stays plain for grouping.)
    street: str | None = Field(default=None, sa_type=SealedText(300))
    city: str | None = Field(default=None, sa_type=SealedText(120))
    postcode: str | None = Field(default=None, sa_type=SealedText(20))
    country: str | None = Field(default=None, sa_type=sa.String(80))


# Input for creating a customer.
class CustomerCreate(CustomerBase):
    tags: list[str] = Field(default_factory=list)
    email: str | None = None
    phone: str | None = None


# Input for updating a customer: every field optional.
class CustomerUpdate(SQLModel):
    name: str | None = None
    company: str | None = None
    domain: str | None = None
    status: CustomerStatus | None = None
    owner_id: int | None = None
    tags: list[str] | None = None
    street: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None


# The table.
class Customer(CustomerBase, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        sa.Index("ix_customers_name_key", "name_key"),
        sa.Index("ix_customers_domain", "domain"),
        sa.Index("ix_customers_owner", "owner_id"),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    # The customer's id in another system (imports, e.g. a shop's customer number).
    external_id: str | None = Field(default=None, sa_type=sa.String(200), unique=True)
    # Lower-cased, accent-folded name for prefix search (same on SQLite and PostgreSQL).
    name_key: str = Field(default="", sa_type=sa.String(200))
    tags: list[str] | None = Field(default=None, sa_column=json_column())
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=utc_column(index=True))


# What readers get back.
class CustomerPublic(CustomerBase):
    id: int
    tags: list[str] | None
    created_at: datetime
    updated_at: datetime


# A normalised way to reach a customer; unique across all customers. The value is sealed
# (encrypted at rest when keys are set); lookups go by ``digest``, a keyed hash (HMAC) of the
# kind and normalised value (crm.services.keys.contact_digest), unique per kind.
class ContactPoint(SQLModel, table=True):
    __tablename__ = "contact_points"
    __table_args__ = (
        sa.UniqueConstraint("kind", "digest", name="uq_contact_points_kind_digest"),
        sa.Index("ix_contact_points_customer", "customer_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    kind: ContactKind = Field(sa_type=enum_type(ContactKind, 16))
    value: str = Field(sa_type=SealedText(320))
    digest: str = Field(sa_type=sa.String(64))
    label: str | None = Field(default=None, sa_type=sa.String(100))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
