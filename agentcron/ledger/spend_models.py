"""The tables of spend and fleet-wide limits (migration 0005)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from agentcron.ledger.models import UTCDateTime
from agentcron.ledger.orm import Base


class RunUsageRow(Base):
    """Tokens and cost one attempt of a run spent on one model (written before its completion)."""

    __tablename__ = "run_usage"
    __table_args__ = (
        Index("ix_run_usage_job_recorded", "job", "recorded_at"),
        Index("ix_run_usage_window", "job", "window_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_key: Mapped[str] = mapped_column(String(160))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BudgetAlertRow(Base):
    """A budget period already alerted (the primary key makes it once per period, fleet-wide)."""

    __tablename__ = "budget_alerts"

    budget: Mapped[str] = mapped_column(String(160), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LimitSlotRow(Base):
    """A held slot of a fleet-wide limit (the SQL store): a lease that expires with its holder."""

    __tablename__ = "limit_slots"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LimitGrantRow(Base):
    """One grant of a rate limit (the SQL store's sliding window: requests and tokens)."""

    __tablename__ = "limit_grants"
    __table_args__ = (Index("ix_limit_grants_name_at", "name", "granted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
