"""The ``dead_letters`` table: queue entries that could not be run (see agentcron.deadletters)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentcron.ledger.models import UTCDateTime
from agentcron.ledger.orm import Base


class DeadLetterRow(Base):
    """One entry taken off a broker queue because it could not be run, with why and when.

    ``raw`` is the entry exactly as it was on the queue (cut at the configured size, then
    ``truncated`` is true and the entry cannot be requeued); ``size`` is its full length.
    ``fingerprint`` names a broker message (queue, delivery tag, body) that a redelivery brings
    back (a worker cut off between storing the letter and acknowledging it): stored once.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ux_dead_letters_fingerprint", "fingerprint", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)
