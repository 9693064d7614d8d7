"""Forced runs: ``force_grants`` (who may force a window) and ``run_history`` (what a forced run
replaced).

A window's row in ``runs`` is what the window is now; a forced run (``trigger --force``,
``backfill`` of a failed window) re-claims a terminal row, and before it does, the row as it
stood is copied to ``run_history``, so history is never overwritten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentcron.ledger.models import UTCDateTime
from agentcron.ledger.orm import Base


class RunHistoryRow(Base):
    """One earlier terminal record of a window (the columns of ``runs`` at that time)."""

    __tablename__ = "run_history"
    __table_args__ = (Index("ix_run_history_window_key", "window_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_key: Mapped[str] = mapped_column(String(160))
    slot: Mapped[datetime] = mapped_column(UTCDateTime())
    trigger: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    token: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime())
    replaced_by: Mapped[str] = mapped_column(String(200))


class ForceGrantRow(Base):
    """Permission for one forced run of a window, written by ``trigger --force`` and
    ``backfill`` before they publish; a worker honours a message's ``force`` only by using one
    (a forged or replayed ``force`` finds none and runs as not forced: deduped)."""

    __tablename__ = "force_grants"
    __table_args__ = (Index("ix_force_grants_window_key", "window_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    window_key: Mapped[str] = mapped_column(String(160))
    granted_by: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
