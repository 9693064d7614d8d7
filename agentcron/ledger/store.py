"""The SQL run ledger: one row per window, fenced claims and completions (SQLite or PostgreSQL).

The row's ``UNIQUE(job, window_start)`` makes a window exist once; a claim stamps the row with a
fencing token, and every later write of the run (start, retry, complete) is an
``UPDATE … WHERE token = :token``: 0 rows means the caller is a stale holder and is dropped.

By concern: :mod:`~agentcron.ledger.claims` (recording and claiming windows),
:mod:`~agentcron.ledger.completions` (starting, retrying, completing runs) and
:mod:`~agentcron.ledger.queries` (reading rows); the protocol all ledgers follow is
:class:`~agentcron.ledger.base.RunLedger`, with an in-memory twin in :mod:`agentcron.ledger.memory`.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.ledger.checks import ResultError
from agentcron.ledger.claims import SqlClaims
from agentcron.ledger.completions import SqlCompletions
from agentcron.ledger.engine import create_engine_for, is_sqlite
from agentcron.ledger.queries import SqlQueries
from agentcron.ledger.sql_base import REPORTS, RUNS
from agentcron.settings import Settings

__all__ = ["REPORTS", "RUNS", "Ledger", "ResultError"]


class Ledger(SqlClaims, SqlCompletions, SqlQueries):
    """The run ledger over one SQLAlchemy engine (see the module docstring)."""

    def __init__(
        self,
        url: str,
        clock: Clock = SYSTEM_CLOCK,
        *,
        result_max_bytes: int = 256 * 1024,
        error_max_chars: int = 2000,
        auto_migrate: bool | None = None,
    ) -> None:
        self._engine = create_engine_for(url)
        self._clock = clock
        self._postgres = self._engine.dialect.name == "postgresql"
        self._dialect = postgresql if self._postgres else sqlite
        self.result_max_bytes = result_max_bytes
        self.error_max_chars = error_max_chars
        if auto_migrate if auto_migrate is not None else is_sqlite(url):
            self.upgrade()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Ledger:
        """A ledger on ``settings.database_url`` with the configured limits."""
        return cls(settings.database_url, clock, result_max_bytes=settings.result_max_bytes,
                   error_max_chars=settings.error_max_chars)  # fmt: skip

    @property
    def engine(self) -> Engine:
        """The engine (shared by the SQL lease store and the dynamic schedules)."""
        return self._engine

    def upgrade(self) -> None:
        """Migrate to the newest schema (alembic head); idempotent, safe concurrently."""
        from agentcron.migrations import upgrade

        upgrade(self._engine)

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()
