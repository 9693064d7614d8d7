"""The outbox table: one row per (report, target), written with the run's success."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from agentcron.ledger.orm import Base
from agentcron.ledger.types import UTCDateTime


class DeliveryRow(Base):
    """One report to one target: ``pending`` (maybe leased by a sender), ``sent`` or ``failed``.

    ``attempts`` counts the sends tried (a claim counts one); ``lease_owner``/``lease_until`` say
    which sender holds it until when; a lapsed lease makes it claimable again.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("report_id", "target", name="uq_deliveries_report_target"),
        Index("ix_deliveries_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(Integer)
    job: Mapped[str] = mapped_column(String(128))
    window_key: Mapped[str] = mapped_column(String(160))
    seq: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
