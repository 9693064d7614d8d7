"""Run statistics of an in-process scheduler."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from agentcron.clock import Clock


@dataclass(frozen=True)
class SchedulerStats:
    """A snapshot: what ``get_stats()`` and ``stop()`` report (as a dict)."""

    name: str
    is_running: bool
    total_executions: int
    successful_executions: int
    failed_executions: int
    cancelled_executions: int
    duplicate_windows: int
    missed_windows: int
    success_rate: float
    runtime_seconds: float
    last_run: datetime | None
    last_window_key: str | None
    last_error: str | None
    next_run: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as a plain dict (datetimes stay datetimes)."""
        return asdict(self)


class StatsRecorder:
    """Counts runs as they end; thread-safe, time from the injected clock."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = {"succeeded": 0, "failed": 0, "cancelled": 0, "duplicate": 0, "missed": 0}
        self._started: float | None = None
        self._runtime = 0.0
        self._running = False
        self.last_run: datetime | None = None
        self.last_window_key: str | None = None
        self.last_error: str | None = None
        self.next_run: datetime | None = None

    def started(self) -> None:
        """The scheduler started (runtime accumulates across start/stop cycles)."""
        with self._lock:
            self._running = True
            self._started = self._clock.monotonic()

    def stopped(self) -> None:
        """The scheduler stopped."""
        with self._lock:
            if self._running and self._started is not None:
                self._runtime += self._clock.monotonic() - self._started
            self._running = False
            self._started = None
            self.next_run = None

    def run_began(self, window_key: str) -> None:
        """A window's run began now."""
        with self._lock:
            self.last_run = self._clock.now()
            self.last_window_key = window_key

    def count(self, state: str, error: str | None = None, amount: int = 1) -> None:
        """A run ended in ``state`` (succeeded, failed, cancelled, duplicate, missed)."""
        with self._lock:
            self._counts[state] += amount
            if error is not None:
                self.last_error = error

    def snapshot(self) -> SchedulerStats:
        """The numbers now."""
        with self._lock:
            counts = dict(self._counts)
            runtime = self._runtime
            if self._running and self._started is not None:
                runtime += self._clock.monotonic() - self._started
            total = counts["succeeded"] + counts["failed"] + counts["cancelled"]
            return SchedulerStats(
                name=self.name,
                is_running=self._running,
                total_executions=total,
                successful_executions=counts["succeeded"],
                failed_executions=counts["failed"],
                cancelled_executions=counts["cancelled"],
                duplicate_windows=counts["duplicate"],
                missed_windows=counts["missed"],
                success_rate=counts["succeeded"] / total if total else 0.0,
                runtime_seconds=runtime,
                last_run=self.last_run,
                last_window_key=self.last_window_key,
                last_error=self.last_error,
                next_run=self.next_run,
            )
