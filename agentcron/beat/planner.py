"""The beat's plan: a heap of the next slot of every job, O(log n) per emission.

Pure: no I/O and no clock reads; ``now`` comes in as an argument. A job's slot comes from its
schedule and its window from :func:`agentcron.windows.window_start`, never from a clock. Jitter
delays the emission (``due_at``), never the slot or the window. Changing or removing a job
bumps its generation; heap entries of an older generation are dropped when they surface, so an
update is O(log n) as well.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from agentcron.emission.envelope import TASKS, Emission, emission_for
from agentcron.emission.jitter import jitter_offset
from agentcron.instants import format_instant
from agentcron.jobs import JobSpec
from agentcron.ledger.records import NewWindow
from agentcron.windows import join_window_key, window_key, window_start

# A heap entry is a plain tuple (a NamedTuple costs ~0.2 s more per 100,000 pushes, measured):
# (due time in epoch seconds, push order, job name, the job's generation when pushed, slot).
_Due = tuple[float, int, str, int, datetime]
_AT: Final = 0
_NAME: Final = 2
_GENERATION: Final = 3


class Planner:
    """Next slots of many jobs in one heap keyed by due time."""

    def __init__(self) -> None:
        self._heap: list[_Due] = []
        self._specs: dict[str, JobSpec] = {}
        self._generation: dict[str, int] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def spec(self, name: str) -> JobSpec:
        """The spec the planner holds for ``name`` (KeyError if none)."""
        return self._specs[name]

    def names(self) -> list[str]:
        """The jobs being planned."""
        return list(self._specs)

    def add(self, spec: JobSpec, after: datetime) -> None:
        """Plan ``spec`` (replacing any older version) from its first slot after ``after``."""
        name = spec.name
        self._specs[name] = spec
        generation = self._generation.get(name, 0) + 1
        self._generation[name] = generation
        self._push(spec, spec.schedule.next_fire(after), generation)

    def add_many(self, specs: Iterable[JobSpec], after: datetime) -> None:
        """Plan many jobs from their first slots after ``after``."""
        for spec in specs:
            self.add(spec, after)

    def remove(self, name: str) -> bool:
        """Stop planning ``name``; True if it was planned."""
        if self._specs.pop(name, None) is None:
            return False
        self._generation[name] = self._generation.get(name, 0) + 1
        return True

    def clear(self) -> None:
        """Forget every job (a beat that stepped down)."""
        self._heap.clear()
        self._specs.clear()
        self._generation.clear()

    def next_due(self) -> datetime | None:
        """When the earliest live entry is due, or None when nothing is planned."""
        self._drop_stale()
        if not self._heap:
            return None
        return datetime.fromtimestamp(self._heap[0][_AT], UTC)

    def due_before(self, now: datetime) -> bool:
        """True if some live entry is due at ``now``."""
        self._drop_stale()
        return bool(self._heap) and self._heap[0][_AT] <= now.timestamp()

    def due(self, now: datetime, limit: int | None = None) -> list[Emission]:
        """Pop every emission due at ``now`` (at most ``limit``) and plan each job's next slot.

        Jobs that share a schedule object (``parse_schedule`` is cached) and a slot share the
        work of computing the next slot and formatting the window instant.
        """
        out: list[Emission] = []
        stamp = now.timestamp()
        heap, live, specs = self._heap, self._generation, self._specs
        following: dict[tuple[int, datetime], datetime | None] = {}
        formatted: dict[datetime, str] = {}
        while heap and heap[0][_AT] <= stamp and (limit is None or len(out) < limit):
            _, _, name, generation, slot = heapq.heappop(heap)
            spec = specs.get(name)
            if spec is None or live.get(name) != generation:
                continue
            out.append(self._emission(spec, slot, formatted))
            memo = (id(spec.schedule), slot)
            if memo not in following:
                following[memo] = spec.schedule.next_fire(slot)
            self._push(spec, following[memo], generation)
        return out

    @staticmethod
    def _emission(spec: JobSpec, slot: datetime, formatted: dict[datetime, str]) -> Emission:
        job = spec.job
        if job.window != "slot" or spec.jitter or slot.microsecond:
            return emission_for(spec, slot)
        text = formatted.get(slot)
        if text is None:
            text = formatted[slot] = format_instant(slot)
        window = NewWindow(job.name, slot, join_window_key(job.name, text), slot, "schedule")
        return Emission(window, spec.queue, TASKS[spec.agent.kind], slot)

    def _push(self, spec: JobSpec, slot: datetime | None, generation: int) -> None:
        if slot is None:
            return
        due_at = slot
        if spec.jitter > timedelta(0):
            key = window_key(spec.name, window_start(slot, spec.job.window, spec.job.tz))
            due_at = slot + jitter_offset(key, spec.jitter)
        self._seq += 1
        heapq.heappush(self._heap, (due_at.timestamp(), self._seq, spec.name, generation, slot))

    def _drop_stale(self) -> None:
        heap, live = self._heap, self._generation
        while heap and (live.get(heap[0][_NAME]) != heap[0][_GENERATION]
                        or heap[0][_NAME] not in self._specs):
            heapq.heappop(heap)
