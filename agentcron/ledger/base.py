"""The run ledger's protocol: what the guard, the beat and the watchdog ask of a ledger.

Two implementations pass the same contract suite (``tests/unit/test_ledger_contract.py``): the
SQL :class:`~agentcron.ledger.store.Ledger` (SQLite or PostgreSQL) and the in-memory
:class:`~agentcron.ledger.memory.MemoryLedger`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from agentcron.ledger.records import (
    Claim,
    ClaimRequest,
    CompleteRequest,
    NewWindow,
    RunRecord,
    RunState,
)
from agentcron.reports.content import PendingReport


class RunLedger(Protocol):
    """One row per window; fenced claims and completions (see :mod:`agentcron.ledger.store`)."""

    result_max_bytes: int
    error_max_chars: int

    def upgrade(self) -> None:
        """Bring the storage to the newest schema (idempotent)."""
        ...

    def close(self) -> None:
        """Release what the ledger holds."""
        ...

    # windows
    def record_scheduled(self, windows: Sequence[NewWindow]) -> list[str]:
        """Record ``windows`` as 'scheduled' unless they have a row; return the new keys."""
        ...

    def mark_terminal(self, window: NewWindow, state: RunState, reason: str) -> bool:
        """Record ``window`` as ``state`` with ``reason`` unless already terminal or active."""
        ...

    # claims
    def claim(self, window: NewWindow, token: int, worker_id: str, max_attempts: int,
              force: bool = False, *, running: bool = False) -> Claim:  # fmt: skip
        """Claim ``window`` for the holder of ``token``."""
        ...

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """:meth:`claim` for many windows."""
        ...

    # completions
    def start(self, job: str, window_start: datetime, token: int) -> bool:
        """claimed -> running for the holder of ``token``; False if fenced out."""
        ...

    def retry(self, job: str, window_start: datetime, token: int, error_type: str,
              error_message: str) -> int | None:  # fmt: skip
        """Count another attempt; the new attempt number, None if fenced out."""
        ...

    def complete(self, job: str, window_start: datetime, token: int, state: RunState, *,
                 result: Any = None, error_type: str | None = None,
                 error_message: str | None = None, duration: float | None = None) -> bool:  # fmt: skip
        """Finish the run of the holder of ``token``; False if fenced out."""
        ...

    def complete_request(self, job: str, window_start: datetime, token: int, state: RunState, *,
                         result: Any = None, error_type: str | None = None,
                         error_message: str | None = None, duration: float | None = None,
                         reports: Sequence[PendingReport] = (),
                         deliver: Sequence[str] = ()) -> CompleteRequest:  # fmt: skip
        """A checked completion for :meth:`complete_many` (raises ResultError now)."""
        ...

    def complete_many(self, requests: Sequence[CompleteRequest]) -> list[bool]:
        """:meth:`complete` for many runs, each fenced on its own token."""
        ...

    # queries
    def get(self, job: str, window_start: datetime) -> RunRecord | None:
        """The row of one window, or None."""
        ...

    def get_many(self, window_keys: Sequence[str]) -> dict[str, RunRecord]:
        """The rows of ``window_keys`` that exist, by key."""
        ...

    def get_by_key(self, window_key: str) -> RunRecord | None:
        """The row of the window named ``window_key``, or None."""
        ...

    def pending(self, older_than: datetime, limit: int = 1000, *,
                jobs: Collection[str] | None = None) -> list[RunRecord]:  # fmt: skip
        """Rows still 'scheduled' since ``older_than`` or earlier, oldest first."""
        ...

    def list_runs(self, job: str | None = None, state: str | None = None,
                  limit: int = 50) -> list[RunRecord]:  # fmt: skip
        """Runs, newest window first, optionally of one job and/or one state."""
        ...

    def count_by_state(self, job: str | None = None) -> dict[str, int]:
        """How many runs are in each state (only states that occur)."""
        ...

    def save_report(self, job: str, window_key: str, title: str, body: Any) -> None:
        """Keep an agent's report (``body`` must be JSON)."""
        ...

    def list_reports(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Reports, newest first, as dicts (job, window_key, title, body, created_at)."""
        ...
