"""Analytics results, stored per run so digests and /crm can read them and show change over time.

The per-customer snapshot tables a refresh writes in bulk (segments, churn
scores, values, and product suggestions in crm.models.product) carry no foreign keys. On
PostgreSQL each key is a trigger fired per row, and they were 80% of the time a run took to
store (1M customers write ~3M rows). Their integrity holds by construction instead: a run's
rows are written in the transaction that creates the run, from customer ids it has just read;
the store locks the audit chain's head first and drops the run's rows of customers erased since
the refresh began (``crm.analytics.refresh.drop_erased``), and an erasure takes the same lock
before it deletes, so the two never interleave. Findings (fewer rows, pointing at deals and
follow-ups that people delete) keep theirs. They are indexed by (run, customer) only: a second
index by customer, whose keys arrive out of order, doubled the time to insert a run's rows;
the few readers that want one customer across runs (erasure, export) name the runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from crm.models.base import SealedText, json_column, utc_column, utcnow


# One analytics refresh (or back-test): when, with which cutoff, and what the model was.
class AnalyticsRun(SQLModel, table=True):
    __tablename__ = "analytics_runs"
    __table_args__ = (sa.Index("ix_analytics_runs_kind_finished", "kind", "finished_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default="refresh", sa_type=sa.String(32))
    status: str = Field(default="running", sa_type=sa.String(16))  # running, done, failed
    cutoff: datetime = Field(sa_column=utc_column())
    started_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    finished_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    customers: int = Field(default=0)
    # Model metadata: method (model / cold_start), validation AUC, features, data size, file...
    meta: dict[str, Any] | None = Field(default=None, sa_column=json_column())


# A customer's segment in one run: RFM scores and named segment, plus the k-means cluster.
class CustomerSegment(SQLModel, table=True):
    __tablename__ = "customer_segments"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "customer_id", name="uq_customer_segments_run_customer"),
        sa.Index("ix_customer_segments_run_segment", "run_id", "rfm_segment"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int  # a run's snapshot: no foreign keys (see the module's note)
    customer_id: int
    recency_score: int
    frequency_score: int
    monetary_score: int
    rfm_segment: str = Field(sa_type=sa.String(40))
    cluster: int | None = None
    cluster_name: str | None = Field(default=None, sa_type=sa.String(120))


# A customer's churn risk in one run, with the reasons in words.
class ChurnScore(SQLModel, table=True):
    __tablename__ = "churn_scores"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "customer_id", name="uq_churn_scores_run_customer"),
        sa.Index("ix_churn_scores_run_probability", "run_id", "probability"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int  # a run's snapshot: no foreign keys (see the module's note)
    customer_id: int
    probability: float
    risk_level: str = Field(sa_type=sa.String(16))  # low, medium, high
    value_at_stake: float | None = None
    reasons: list[str] | None = Field(default=None, sa_column=json_column())
    method: str = Field(default="model", sa_type=sa.String(16))  # model or cold_start


# Something a rep should do, found by the follow-up rules in one run.
class Finding(SQLModel, table=True):
    __tablename__ = "findings"
    __table_args__ = (
        sa.Index("ix_findings_run_owner", "run_id", "owner_id"),
        sa.Index("ix_findings_customer", "customer_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="analytics_runs.id", ondelete="CASCADE")
    kind: str = Field(
        sa_type=sa.String(40)
    )  # overdue_follow_up, rotting_deal, close_date_passed, unanswered_email, going_quiet
    customer_id: int | None = Field(default=None, foreign_key="customers.id", ondelete="CASCADE")
    deal_id: int | None = Field(default=None, foreign_key="deals.id", ondelete="CASCADE")
    follow_up_id: int | None = Field(default=None, foreign_key="follow_ups.id", ondelete="CASCADE")
    owner_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    severity: int = Field(default=1)
    why: str = Field(sa_type=SealedText())  # sealed: names a customer, a subject or a note
    action: str = Field(sa_type=sa.Text)
    since: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


# Each customer's expected value over the horizon, as computed in one run.
class CustomerValue(SQLModel, table=True):
    __tablename__ = "customer_values"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "customer_id", name="uq_customer_values_run_customer"),
        sa.Index("ix_customer_values_run_spend", "run_id", "expected_spend"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int  # a run's snapshot: no foreign keys (see the module's note)
    customer_id: int
    expected_purchases: float
    expected_spend: float
    p_alive: float
    horizon_months: int
