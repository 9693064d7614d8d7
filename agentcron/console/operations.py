"""The console's fleet view and its actions: pause, resume, trigger, backfill.

Actions reuse the CLI's code paths (``agentcron trigger``, ``agentcron backfill``,
``ScheduleStore.pause``), so a window triggered here is deduped exactly like one triggered there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agentcron import keys
from agentcron.console.catalogue import JobEntry
from agentcron.console.data import ConsoleData
from agentcron.console.letters import LettersView
from agentcron.emission.publisher import Publisher
from agentcron.jobs import ASYNC_QUEUE, SYNC_QUEUE
from agentcron.watch.heartbeats import BEAT, WORKER, open_heartbeats

BACKFILL_LIMIT = 1000


@dataclass
class Fleet:
    """Beat leader and standbys, workers per queue, queue depths, recent missed windows."""

    leader: str | None
    beats: list[dict[str, Any]]
    workers: dict[str, list[dict[str, Any]]]
    depths: dict[str, int | None]
    missed: list[Any]
    problem: str | None = None  # the heartbeats could not be read


class Operations:
    """Fleet reads and job actions over one :class:`ConsoleData`."""

    def __init__(self, data: ConsoleData) -> None:
        self.data = data
        self.runtime = data.runtime
        self._app: Any = None
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()
        self.letters = LettersView(data.runtime)

    def _celery(self) -> Any:
        with self._lock:
            if self._app is None:
                from celery import Celery

                from agentcron.beat.factory import open_publisher

                app = Celery("agentcron-console", broker=self.runtime.settings.broker_url)
                app.conf.update(task_serializer="json", accept_content=["json"],
                                broker_connection_timeout=3, broker_connection_retry=False,
                                broker_connection_max_retries=0)  # fmt: skip
                self._app, self._publisher = app, open_publisher(app, self.runtime.settings)
            return self._app

    def fleet(self) -> Fleet:
        """The fleet as the heartbeats, the leader lease and the broker see it now."""
        from agentcron.watch.queued import queue_depths

        clock = self.runtime.clock
        now = clock.now()
        try:
            holder = self.runtime.leases.holder(keys.BEAT_LEADER)
        except Exception:
            holder = None
        problem = None
        try:
            alive = open_heartbeats(self.runtime.settings, clock).alive()
        except Exception as exc:  # Redis does not answer: show the rest of the page
            alive, problem = [], f"heartbeats unavailable ({type(exc).__name__}); is Redis up?"
        beats = [{"ident": h.ident, "leader": h.leader, "age": (now - h.at).total_seconds(),
                  "host": h.host, "pid": h.pid} for h in alive if h.role == BEAT]  # fmt: skip
        workers: dict[str, list[dict[str, Any]]] = {}
        for beat in alive:
            if beat.role == WORKER:
                for queue in beat.queues:
                    workers.setdefault(queue, []).append(
                        {"ident": beat.ident, "age": (now - beat.at).total_seconds()})
        queues = sorted({SYNC_QUEUE, ASYNC_QUEUE, *(e.spec.queue for e in
                                                    self.data.catalogue.entries().values())})
        depths: dict[str, int | None]
        try:
            depths = dict(queue_depths(self._celery(), queues))
        except Exception:  # the broker does not answer: show the depths as unknown
            depths = dict.fromkeys(queues)
        missed = self.data.views.missed_since(now - timedelta(hours=24))
        leader: str | None = holder.owner if holder is not None else next(
            (str(b["ident"]) for b in beats if b["leader"]), None)
        for shown in beats:  # the lease is the authority; a heartbeat's flag can lag behind it
            shown["leader"] = shown["ident"] == leader
        return Fleet(leader, beats, workers, depths, missed, problem)

    def pause(self, entry: JobEntry, paused: bool) -> str:
        """Pause or resume a job (a file job gets its schedules row first)."""
        store = self.data.catalogue.store
        if not store.set_enabled(entry.name, not paused):
            store.upsert([entry.spec.job], "file")
            store.set_enabled(entry.name, not paused)
        self.data.catalogue.forget()
        return f"{entry.name} {'paused' if paused else 'resumed'}"

    def trigger(self, entry: JobEntry, force: bool) -> str:
        """Run the window containing now (deduped unless ``force``); a sentence saying what
        happened."""
        from agentcron.cli.trigger import trigger

        self._celery()
        publisher = self._publisher
        assert publisher is not None  # _celery() opened it with the app
        return trigger(entry.spec, self.runtime.ledger, publisher, self.runtime.clock, force)

    def backfill_count(self, entry: JobEntry, start: datetime, end: datetime) -> int:
        """How many windows ``[start, end]`` holds (raises BackfillError past the limit)."""
        from agentcron.watch.backfill import plan_windows

        return len(plan_windows(entry.spec, start, end, BACKFILL_LIMIT))

    def backfill(self, entry: JobEntry, start: datetime, end: datetime) -> str:
        """Enqueue the windows of ``[start, end]`` that have not succeeded."""
        from agentcron.emission.publisher import CeleryPublisher
        from agentcron.watch.backfill import backfill

        report = backfill(entry.spec, self.runtime.ledger, CeleryPublisher(self._celery()),
                          start, end, BACKFILL_LIMIT)  # fmt: skip
        return report.summary()
