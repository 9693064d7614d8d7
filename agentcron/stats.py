"""Run statistics a worker logs at shutdown: counts, mean and p95 duration."""

from __future__ import annotations

import threading
from collections import deque


class RunStats:
    """Thread-safe counters of what a guard did, and a bounded sample of durations."""

    COUNTERS = ("runs", "successes", "failures", "retries", "duplicates", "skipped", "missed",
                "cancelled", "timeouts", "stale", "deferred")  # fmt: skip

    def __init__(self, sample_size: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.COUNTERS, 0)
        self._durations: deque[float] = deque(maxlen=sample_size)

    def add(self, counter: str, amount: int = 1) -> None:
        """Increment ``counter`` (one of :attr:`COUNTERS`)."""
        with self._lock:
            self._counts[counter] += amount

    def observe(self, seconds: float) -> None:
        """Record one run's duration."""
        with self._lock:
            self._durations.append(seconds)

    def snapshot(self) -> dict[str, float]:
        """Counters plus ``mean_duration`` and ``p95_duration`` in seconds."""
        with self._lock:
            data: dict[str, float] = {k: float(v) for k, v in self._counts.items()}
            durations = sorted(self._durations)
        data["mean_duration"] = sum(durations) / len(durations) if durations else 0.0
        data["p95_duration"] = durations[int(0.95 * (len(durations) - 1))] if durations else 0.0
        return data

    def summary(self) -> str:
        """One log line."""
        s = self.snapshot()
        return (
            f"runs={s['runs']:.0f} successes={s['successes']:.0f} failures={s['failures']:.0f} "
            f"retries={s['retries']:.0f} duplicates skipped={s['duplicates']:.0f} "
            f"overlap skips={s['skipped']:.0f} mean={s['mean_duration']:.3f}s "
            f"p95={s['p95_duration']:.3f}s"
        )
