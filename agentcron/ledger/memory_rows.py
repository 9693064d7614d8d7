"""The in-memory ledger's rows and the queries over them (the base of
:class:`~agentcron.ledger.memory.MemoryLedger`, which adds claims and completions)."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.ledger.checks import check_result
from agentcron.ledger.records import NewWindow, RunRecord, RunState
from agentcron.reports.content import PendingReport

_Key = tuple[str, datetime]


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when.isoformat()}: the ledger keeps aware UTC times")
    return when.astimezone(UTC)


@dataclasses.dataclass
class _Row:
    id: int
    record: RunRecord


class MemoryRows:
    """One row per window in a dict, under one lock; reading them."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, result_max_bytes: int = 256 * 1024,
                 error_max_chars: int = 2000) -> None:  # fmt: skip
        self.result_max_bytes = result_max_bytes
        self.error_max_chars = error_max_chars
        self.history: list[tuple[RunRecord, str]] = []  # forced runs' replaced records
        self.outputs: list[tuple[str, str, tuple[PendingReport, ...], tuple[str, ...]]] = []
        self._clock = clock
        self._rows: dict[_Key, _Row] = {}
        self._keys: dict[str, _Key] = {}
        self._reports: list[dict[str, Any]] = []
        self._lock = threading.RLock()

    def upgrade(self) -> None:
        """Nothing to migrate."""

    def close(self) -> None:
        """Nothing to release."""

    # -- rows ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return _utc(self._clock.now())

    def _insert(self, window: NewWindow, state: RunState, **values: Any) -> RunRecord | None:
        key = (window.job, _utc(window.window_start))
        if key in self._rows:
            return None
        now = self._now()
        record = RunRecord(window.job, key[1], window.window_key, _utc(window.slot), window.trigger,
                           state, 0, None, None, now, None, None, None, None, None, None)  # fmt: skip
        record = dataclasses.replace(record, **values)
        self._rows[key] = _Row(len(self._rows) + 1, record)
        self._keys[window.window_key] = key
        return record

    def _set(self, record: RunRecord, **values: Any) -> RunRecord:
        row = self._rows[(record.job, record.window_start)]
        row.record = dataclasses.replace(row.record, **values)
        return row.record

    # -- queries ------------------------------------------------------------------------------

    def _get(self, job: str, window_start: datetime) -> RunRecord | None:
        row = self._rows.get((job, _utc(window_start)))
        return None if row is None else row.record

    def get(self, job: str, window_start: datetime) -> RunRecord | None:
        """The row of one window, or None."""
        with self._lock:
            return self._get(job, window_start)

    def get_many(self, window_keys: Sequence[str]) -> dict[str, RunRecord]:
        """The rows of ``window_keys`` that exist, by key."""
        with self._lock:
            return {k: self._rows[self._keys[k]].record for k in window_keys if k in self._keys}

    def get_by_key(self, window_key: str) -> RunRecord | None:
        """The row of the window named ``window_key``, or None."""
        with self._lock:
            key = self._keys.get(window_key)
            return None if key is None else self._rows[key].record

    def pending(self, older_than: datetime, limit: int = 1000, *,
                jobs: Collection[str] | None = None) -> list[RunRecord]:  # fmt: skip
        """Rows still 'scheduled' since ``older_than`` or earlier, oldest first."""
        older_than = _utc(older_than)
        with self._lock:
            rows = [r for r in self._rows.values() if r.record.state is RunState.SCHEDULED
                    and r.record.scheduled_at is not None
                    and r.record.scheduled_at <= older_than
                    and (jobs is None or r.record.job in jobs)]  # fmt: skip
        rows.sort(key=lambda r: (r.record.scheduled_at, r.id))
        return [r.record for r in rows[:limit]]

    def list_runs(self, job: str | None = None, state: str | None = None,
                  limit: int = 50) -> list[RunRecord]:  # fmt: skip
        """Runs, newest window first, optionally of one job and/or one state."""
        wanted = RunState(state) if state is not None else None
        with self._lock:
            rows = [r for r in self._rows.values() if (job is None or r.record.job == job)
                    and (wanted is None or r.record.state is wanted)]  # fmt: skip
        rows.sort(key=lambda r: (r.record.window_start, r.id), reverse=True)
        return [r.record for r in rows[:limit]]

    def count_by_state(self, job: str | None = None) -> dict[str, int]:
        """How many runs are in each state (only states that occur)."""
        with self._lock:
            return dict(Counter(str(r.record.state) for r in self._rows.values()
                                if job is None or r.record.job == job))  # fmt: skip

    def save_report(self, job: str, window_key: str, title: str, body: Any) -> None:
        """Keep an agent's report (``body`` must be JSON)."""
        report = {"job": job, "window_key": window_key, "title": title[:200],
                  "body": check_result(body, self.result_max_bytes), "created_at": self._now()}  # fmt: skip
        with self._lock:
            self._reports.append(report)

    def list_reports(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Reports, newest first, as dicts (job, window_key, title, body, created_at)."""
        with self._lock:
            found = [dict(r) for r in reversed(self._reports) if job is None or r["job"] == job]
        return found[:limit]
