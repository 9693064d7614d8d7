"""The console's view of every job: specs, paused flags and next fires, cached by revision.

Jobs come from the runtime (the schedule file and the schedules table); the paused flags from
the schedules table. Both are re-read only when the table's revision moves (one indexed
``max()`` per request), so a page of 10,000 jobs costs a sort and a slice, not 10,000 compiles.
Next fire times are cached per job until they pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from agentcron.jobs import JobSpec
from agentcron.ledger.schedules import ScheduleStore
from agentcron.runtime import Runtime


@dataclass(frozen=True)
class JobEntry:
    """One job as the console lists it."""

    spec: JobSpec
    paused: bool

    @property
    def name(self) -> str:
        return self.spec.name


class Catalogue:
    """Every known job, reloaded when the schedules table changes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = ScheduleStore(runtime.ledger.engine, runtime.clock)
        self._revision: int | None = None
        self._entries: dict[str, JobEntry] = {}
        self._next: dict[str, datetime | None] = {}
        self._orders: dict[str, list[JobEntry]] = {}
        self._lock = threading.Lock()

    def entries(self) -> dict[str, JobEntry]:
        """Jobs by name (reloaded first if the schedules table moved)."""
        revision = self.store.revision()
        with self._lock:
            if revision != self._revision:
                self.runtime.reload()
                rows = {e.name: e for e in self.store.entries(include_removed=True)}
                entries = {}
                for spec in self.runtime.specs():
                    row = rows.get(spec.name)
                    if row is not None and row.removed:
                        continue
                    paused = not spec.job.enabled or (row is not None and not row.enabled)
                    entries[spec.name] = JobEntry(spec, paused)
                self._entries, self._revision, self._next = entries, revision, {}
                self._orders = {}
            return self._entries

    def ordered(self, sort: str) -> list[JobEntry]:
        """Every job sorted by name, queue or paused-first (cached until the next reload)."""
        entries = self.entries()
        with self._lock:
            found = self._orders.get(sort)
            if found is None:
                keys = {"queue": lambda e: (e.spec.queue, e.name),
                        "paused": lambda e: (not e.paused, e.name)}  # fmt: skip
                found = sorted(entries.values(), key=keys.get(sort, lambda e: e.name))
                self._orders[sort] = found
            return found

    def queues(self) -> list[str]:
        """The queues the jobs use."""
        return sorted({e.spec.queue for e in self.ordered("queue")})

    def get(self, name: str) -> JobEntry | None:
        """One job, or None."""
        return self.entries().get(name)

    def next_fire(self, entry: JobEntry, now: datetime) -> datetime | None:
        """The job's next fire after ``now`` (cached until it passes)."""
        cached = self._next.get(entry.name, now)
        if cached is not None and cached <= now:
            cached = entry.spec.schedule.next_fire(now)
            self._next[entry.name] = cached
        return cached

    def forget(self) -> None:
        """Reload at the next request (after a pause or resume made here)."""
        with self._lock:
            self._revision = None
