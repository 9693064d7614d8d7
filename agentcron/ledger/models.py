"""The ledger's tables (SQLAlchemy 2 typed ORM). Migrations: agentcron/migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from agentcron.ledger.orm import Base
from agentcron.ledger.outbox_models import DeliveryRow
from agentcron.ledger.types import UTCDateTime

__all__ = ["Base", "DeliveryRow", "LeaseRow", "ReportRow", "RunRow", "ScheduleRow", "UTCDateTime"]


class RunRow(Base):
    """One window of one job: what must end with exactly one success or one terminal reason."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("job", "window_start", name="uq_runs_job_window"),
        Index("ix_runs_state_scheduled", "state", "scheduled_at"),
        Index("ix_runs_job_slot", "job", "slot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_key: Mapped[str] = mapped_column(String(160), unique=True)
    slot: Mapped[datetime] = mapped_column(UTCDateTime())
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")
    state: Mapped[str] = mapped_column(String(16), default="scheduled")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    token: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScheduleRow(Base):
    """A job declaration kept in the ledger: from beat_schedule.py (source 'file') or the API."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    definition: Mapped[Any] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16), default="api")
    revision: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LeaseRow(Base):
    """A lease of the SQL lease store. The row is never deleted, so ``token`` only grows."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReportRow(Base):
    """A report of a window's succeeded run (``ctx.report``), written with the run's success.

    ``seq`` is its place among the run's reports (1, 2, ...); ``attachments`` a JSON list of
    ``{"name", "size", "data" (base64)}``.
    """

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_window_key", "window_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128), index=True)
    window_key: Mapped[str] = mapped_column(String(160))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attachments: Mapped[Any] = mapped_column(JSON, nullable=True)


from agentcron.ledger import run_logs as _run_logs  # noqa: E402,F401  (the run_logs table)
from agentcron.ledger import spend_models as spend_models  # noqa: E402  (run_usage, limits: 0005)
from agentcron.ledger.dead_letter_rows import DeadLetterRow  # noqa: E402  (the dead_letters table)
from agentcron.ledger.history_models import ForceGrantRow, RunHistoryRow  # noqa: E402

__all__ = ["DeadLetterRow", "ForceGrantRow", "LeaseRow", "ReportRow", "RunHistoryRow", "RunRow",
           "ScheduleRow", "UTCDateTime"]
