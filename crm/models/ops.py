"""Operational state shared by replicas: mailbox sync, leases, digest runs, channel links,
and the signed requests already carried out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import SealedBytes, SealedText, json_column, utc_column, utcnow


# Where an IMAP mailbox's sync stands (UID-based).
class MailboxState(SQLModel, table=True):
    __tablename__ = "mailbox_states"

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(sa_type=sa.String(300), unique=True)
    # IMAP UIDs and UIDVALIDITY are unsigned 32-bit: beyond a signed INTEGER.
    uid_validity: int | None = Field(default=None, sa_type=sa.BigInteger)
    last_uid: int = Field(default=0, sa_type=sa.BigInteger)
    # Highest UID whose post-commit step (\Seen or move) is done; below last_uid after a crash.
    flagged_uid: int = Field(default=0, sa_type=sa.BigInteger)
    last_attempt_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_success_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    last_error_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    consecutive_failures: int = Field(default=0)
    stored_count: int = Field(default=0)
    duplicate_count: int = Field(default=0)
    quarantined_count: int = Field(default=0)
    ignored_count: int = Field(default=0)


# A lease: one holder at a time for a named piece of work (e.g. polling one mailbox).
class Lease(SQLModel, table=True):
    __tablename__ = "leases"

    name: str = Field(primary_key=True, sa_type=sa.String(300))
    holder: str = Field(sa_type=sa.String(200))
    expires_at: datetime = Field(sa_column=utc_column())


# A message that was not stored as an interaction, kept raw with the reason: quarantined (it
# could not be used) or ignored (an automatic reply, list mail, ...); never silently dropped.
class QuarantinedMessage(SQLModel, table=True):
    __tablename__ = "quarantined_messages"
    __table_args__ = (
        sa.UniqueConstraint("source", "external_id", name="uq_quarantine_source"),
        sa.Index("ix_quarantined_messages_external_id", "external_id"),
        sa.Index("ix_quarantined_messages_outcome", "outcome", "resolved_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(sa_type=sa.String(200))
    external_id: str = Field(sa_type=sa.String(500))
    reason: str = Field(sa_type=SealedText())  # sealed: may name the sender
    raw: bytes = Field(sa_type=SealedBytes)  # sealed, as subject and sender
    received_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    resolved_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # "quarantined" or "ignored".
    outcome: str = Field(default="quarantined", sa_type=sa.String(16))
    # Where the message was found: a file, an mbox or Maildir entry, or a folder and UID.
    origin: str | None = Field(default=None, sa_type=sa.String(1000))
    subject: str | None = Field(default=None, sa_type=SealedText(500))
    sender: str | None = Field(default=None, sa_type=SealedText(320))
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


# One digest send, claimed before sending so it goes out once per (job, period, recipient).
class DigestRun(SQLModel, table=True):
    __tablename__ = "digest_runs"
    __table_args__ = (
        sa.UniqueConstraint("job", "period", "recipient", name="uq_digest_runs_claim"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(sa_type=sa.String(64))
    period: str = Field(sa_type=sa.String(64))
    recipient: str = Field(sa_type=sa.String(320))
    status: str = Field(default="claimed", sa_type=sa.String(16))
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    claimed_by: str = Field(default="", sa_type=sa.String(200))
    claimed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    meta: dict[str, Any] | None = Field(default=None, sa_column=json_column())


# A Slack channel whose messages are captured as interactions with one customer.
class ChannelLink(SQLModel, table=True):
    __tablename__ = "channel_links"

    id: int | None = Field(default=None, primary_key=True)
    channel_id: str = Field(sa_type=sa.String(32), unique=True)
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    linked_by: str = Field(sa_type=sa.String(200))
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


# A signed request carried out once: a repeat within the signature's validity is not carried
# out again, on whichever replica it arrives. Rows older than that validity are pruned.
class SeenRequest(SQLModel, table=True):
    __tablename__ = "seen_requests"

    key: str = Field(primary_key=True, sa_type=sa.String(128))
    seen_at: datetime = Field(sa_column=utc_column(index=True))
