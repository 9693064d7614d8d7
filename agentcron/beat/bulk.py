"""Recording many windows in one statement on PostgreSQL.

:meth:`Ledger.record_scheduled` inserts with SQLAlchemy's batched VALUES lists: about 6,000
rows/s on PostgreSQL, too slow for 100,000 windows due at one minute boundary. On PostgreSQL
:class:`BulkRecorder` sends one ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING
RETURNING window_key`` per chunk: the same rows (state 'scheduled', attempt 0, scheduled_at =
updated_at = now), the same uniqueness, about an order of magnitude faster. Everything else
(pending rows, terminal marks) goes to the ledger itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agentcron.clock import Clock
from agentcron.ledger.batch_sql import PG_INSERT_SCHEDULED, pg_insert_params
from agentcron.ledger.records import NewWindow, RunRecord, RunState


class BulkRecorder:
    """A :class:`~agentcron.beat.emitter.WindowLedger` whose bulk insert is one statement."""

    def __init__(self, ledger: Any, clock: Clock, chunk: int = 50_000) -> None:
        self.ledger = ledger
        self.clock = clock
        self.chunk = chunk

    @staticmethod
    def supports(ledger: Any) -> bool:
        """True when the ledger is on PostgreSQL."""
        return bool(ledger.engine.dialect.name == "postgresql")

    def record_scheduled(self, windows: Sequence[NewWindow]) -> list[str]:
        """Insert windows as 'scheduled' unless they have a row; the keys that were new."""
        fresh: list[str] = []
        now = self.clock.now()
        with self.ledger.engine.begin() as conn:
            for start in range(0, len(windows), self.chunk):
                part = windows[start : start + self.chunk]
                params = pg_insert_params(part, now)
                fresh.extend(conn.execute(PG_INSERT_SCHEDULED, params).scalars())
        return fresh

    def pending(self, older_than: datetime, limit: int = 1000) -> list[RunRecord]:
        """Rows still 'scheduled' (from the ledger)."""
        return list(self.ledger.pending(older_than, limit))

    def mark_terminal(self, window: NewWindow, state: RunState, reason: str) -> bool:
        """A terminal mark (from the ledger)."""
        return bool(self.ledger.mark_terminal(window, state, reason))
