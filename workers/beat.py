"""``celery beat``'s scheduler: thin glue over :class:`agentcron.beat.BeatService`.

``celery -A workers.app beat`` uses it by default (``beat_scheduler``); ``-S
workers.beat:AgentcronScheduler`` works with any app.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery.beat import Scheduler

from agentcron.beat.factory import build_beat
from agentcron.beat.service import BeatService
from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.eviction import exit_if_evicting
from agentcron.settings import Settings
from workers.operate import BeatOps


class AgentcronScheduler(Scheduler):  # type: ignore[misc]
    """Celery beat scheduler backed by agentcron's heap, ledger and leader lease."""

    service: BeatService | None = None
    ops: BeatOps | None = None
    clock: Clock = SYSTEM_CLOCK  # every instant the beat uses comes from here (tests inject one)

    def now(self) -> datetime:
        """The scheduler's clock (instead of ``app.now``)."""
        return self.clock.now()

    def setup_schedule(self) -> None:
        """Build the beat service (ledger, leases, jobs) once per process."""
        exit_if_evicting(Settings.from_env())  # before anything is written or led
        self.service = build_beat(self.app, clock=self.clock)
        self.ops = BeatOps(self.app, self.service)  # heartbeat, watchdog task, metrics

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass; seconds until the next."""
        if self.service is None:
            self.setup_schedule()
        assert self.service is not None
        return min(self.service.tick(), self.ops.tick() if self.ops else 60.0)

    def sync(self) -> None:
        """Nothing to persist: the ledger is written before every publish."""

    def close(self) -> None:
        """Step down as leader."""
        if self.service is not None:
            self.service.close()
        if self.ops is not None:
            self.ops.close()

    @property
    def info(self) -> str:
        """The line ``celery beat`` prints at start."""
        return "    . agentcron: heap + ledger (record before publish) + leader lease"
