"""The ``run_logs`` table: the lines an agent logged through ``ctx.log``, one row per attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from agentcron.ledger.models import UTCDateTime
from agentcron.ledger.orm import Base


class RunLogRow(Base):
    """The captured ``ctx.log`` lines of one attempt of one window (already capped)."""

    __tablename__ = "run_logs"
    __table_args__ = (Index("ix_run_logs_window_key", "window_key", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    window_key: Mapped[str] = mapped_column(String(160))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    lines: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
