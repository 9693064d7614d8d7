"""What one watchdog pass did: its own module, so that the watchdog and the metrics that count
its passes (:func:`agentcron.watch.metrics.record_watch`) both import it and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WatchReport:
    """What one pass did (window keys)."""

    enqueued: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    alerted: list[str] = field(default_factory=list)
    jobs: int = 0

    def summary(self) -> str:
        """One line for logs and ``agentcron check``."""
        return (f"{self.jobs} job(s): {len(self.enqueued)} enqueued, {len(self.republished)} "
                f"re-published, {len(self.missed)} marked missed, {len(self.alerted)} alerted")
