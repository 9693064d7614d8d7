"""The ledger's tables (SQLAlchemy 2 typed ORM). Migrations: agentcron/migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from agentcron.ledger.base import Base


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
    """Output an agent chose to keep (the example agents store their reports here)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128), index=True)
    window_key: Mapped[str] = mapped_column(String(160))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


from agentcron.ledger import run_logs as _run_logs  # noqa: E402,F401  (the run_logs table)
from agentcron.ledger import spend_models as spend_models  # noqa: E402  (run_usage, limits: 0005)
from agentcron.ledger.dead_letter_rows import DeadLetterRow  # noqa: E402  (the dead_letters table)
from agentcron.ledger.history_models import ForceGrantRow, RunHistoryRow  # noqa: E402

__all__ = ["DeadLetterRow", "ForceGrantRow", "LeaseRow", "ReportRow", "RunHistoryRow", "RunRow",
           "ScheduleRow", "UTCDateTime"]
