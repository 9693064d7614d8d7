"""The beat loop, free of Celery: one :meth:`BeatService.tick` decides, records and publishes.

A tick: make sure we lead (or stand by), take over if we just became leader (load the jobs,
catch up from the ledger's last slots, owe a re-publication of rows left 'scheduled'), pick up
schedule changes every ``refresh_interval``, re-publish what a broker outage left, then emit
every due window from the planner's heap. It returns how long to sleep. Nothing in a tick is
O(number of jobs): due windows come off a heap and changes come by revision.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from agentcron.beat.catchup import plan_catchup
from agentcron.beat.leader import LeaderElection
from agentcron.beat.planner import Planner
from agentcron.beat.sources import SpecSource
from agentcron.clock import Clock
from agentcron.emission.emitter import Emitter
from agentcron.emission.envelope import Emission, emission_for
from agentcron.jobs import JobSpec
from agentcron.ledger.queries import last_slots
from agentcron.ledger.records import NewWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeatConfig:
    """Timing of the beat loop (seconds)."""

    max_interval: float = 1.0
    refresh_interval: float = 2.0
    max_batch: int = 200_000
    chunk: int = 10_000
    stage_ahead: float = 1.5
    """How long before an instant its windows are taken off the heap (0: at the instant)."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC pass meanwhile: while a boundary's windows are emitted (they are freed right
    after) or while the jobs are loaded (they live as long as the beat)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class BeatService:
    """Plan, lead, record and publish."""

    def __init__(self, source: SpecSource, emitter: Emitter, clock: Clock, *,
                 engine: Engine | None, leader: LeaderElection | None = None,
                 config: BeatConfig | None = None) -> None:  # fmt: skip
        self.source = source
        self.emitter = emitter
        self.clock = clock
        self.engine = engine
        self.leader = leader
        self.config = config or BeatConfig()
        self.planner = Planner()
        self.active = False
        self._loaded = False
        self._refreshed_at = 0.0
        self._unrecorded: list[Emission] = []
        self._staged: list[Emission] = []  # the next instant's windows, taken off the heap
        self._staged_at: datetime | None = None

    def tick(self) -> float:
        """One pass of the loop; the seconds to sleep before the next."""
        if not self._loaded:
            self._load()  # before the election: a new leader must not spend its TTL loading
        if self.leader is not None and not self.leader.ensure():
            if self.active:
                self._deactivate()
            self._refresh()  # a standby keeps its specs current, to take over at once
            return min(self.config.max_interval, self.leader.ttl / 3)
        if not self.active:
            self._activate()
        self._refresh()
        self.emitter.republish_owed(self.source.route)
        now = self.clock.now()
        retry, self._unrecorded = self._unrecorded, []
        staged = self._take_staged(now)
        if retry or staged or self.planner.due_before(now):
            if self.leader is not None and not self.leader.leading:
                self._unrecorded = retry
                self._deactivate()
                return 0.0
            with gc_paused():
                self._unrecorded = self.emitter.emit_stream(self._chunks(retry, staged, now))
        with gc_paused():
            self._stage()
        return self._sleep_time()

    def _stage(self) -> None:
        """Take the next instant's windows off the heap ahead of it (at most
        ``config.stage_ahead`` seconds before): at the instant only recording and publishing
        remain (popping and building 100,000 windows took ~0.5 s after the boundary). Nothing
        is recorded or published before the instant; staged windows of a job changed or removed
        meanwhile are dropped (:meth:`_refresh`), and all of them when the beat stands by."""
        if self._staged or self._unrecorded or self.config.stage_ahead <= 0:
            return
        due = self.planner.next_due()
        if due is None:
            return
        ahead = (due - self.clock.now()).total_seconds()
        if 0 < ahead <= self.config.stage_ahead:
            self._staged = self.planner.due(due, self.config.max_batch)
            self._staged_at = due

    def _take_staged(self, now: datetime) -> list[Emission]:
        if self._staged_at is None or now < self._staged_at:
            return []
        staged, self._staged, self._staged_at = self._staged, [], None
        return staged

    def _drop_staged(self, names: Iterable[str] | None = None) -> None:
        """Forget the staged windows (of ``names`` only, when given)."""
        if names is None:
            self._staged, self._staged_at = [], None
            return
        if self._staged:
            gone = set(names)
            self._staged = [e for e in self._staged if e.window.job not in gone]

    def close(self) -> None:
        """Give up leadership (a standby takes over without waiting for the TTL)."""
        if self.leader is not None:
            self.leader.stop()
            self.leader.step_down("shutting down")

    def _sleep_time(self) -> float:
        if self._unrecorded:
            return self.config.max_interval
        next_due = self.planner.next_due()
        if self._staged_at is not None and (next_due is None or self._staged_at < next_due):
            next_due = self._staged_at
        if next_due is None:
            return self.config.max_interval
        wait = (next_due - self.clock.now()).total_seconds()
        return max(0.0, min(self.config.max_interval, wait))

    def _chunks(self, retry: list[Emission], staged: list[Emission],
                now: datetime) -> Iterator[list[Emission]]:  # fmt: skip
        if retry:
            yield retry
        emitted, size = 0, min(1000, self.config.chunk)  # a small first chunk: first message soon
        while emitted < len(staged):
            yield staged[emitted:emitted + size]
            emitted += size
            size = self.config.chunk
        emitted = len(staged)
        while emitted < self.config.max_batch:
            chunk = self.planner.due(now, min(size, self.config.max_batch - emitted))
            size = self.config.chunk
            if not chunk:
                return
            emitted += len(chunk)
            yield chunk

    def _emit(self, due: list[Emission]) -> None:
        self._unrecorded += self.emitter.emit_stream([due])

    def _load(self) -> None:
        with gc_paused():  # 100,000 long-lived specs: no GC pass over them while they are made
            specs = self.source.load()
        self._loaded = True
        self._refreshed_at = self.clock.monotonic()
        gc.collect()
        gc.freeze()  # the specs live as long as the beat: keep them out of GC scans
        log.info("beat loaded %d job(s)", len(specs))

    def _activate(self) -> None:
        specs = dict(self.source.specs)
        now = self.clock.now()
        self.emitter.owe(now - timedelta(milliseconds=1))  # what a dead leader left unpublished
        self.planner.clear()
        self._drop_staged()
        self.planner.add_many(specs.values(), now)
        self._catch_up(specs.values(), now)
        self.active = True
        gc.freeze()  # so does the heap
        log.info("beat active with %d job(s)", len(specs))

    def _deactivate(self) -> None:
        self.active = False
        self.planner.clear()
        self._drop_staged()
        log.info("beat standing by")

    def _catch_up(self, specs: Iterable[JobSpec], now: datetime) -> None:
        if self.engine is None:
            return
        last = last_slots(self.engine)
        emit: dict[str, Emission] = {}
        missed: dict[str, tuple[NewWindow, str]] = {}
        for spec in specs:
            previous = last.get(spec.name)
            plan = plan_catchup(spec.schedule, previous, now, spec.catchup_window,
                                spec.job.coalesce)  # fmt: skip
            for slot in plan.emit:
                emission = emission_for(spec, slot, "catchup")
                emit[emission.window.window_key] = emission
            seen = emission_for(spec, previous).window.window_key if previous else None
            for slot, reason in plan.missed:
                window = emission_for(spec, slot).window
                if window.window_key != seen:
                    missed.setdefault(window.window_key, (window, reason))
            if plan.truncated:
                log.warning("job %r: %d older windows not recorded as missed", spec.name,
                            plan.truncated)  # fmt: skip
        marks = [m for key, m in missed.items() if key not in emit]
        if marks:
            log.warning("recording %d window(s) missed while the scheduler was down", len(marks))
            self.emitter.mark_missed(marks)
        if emit:
            log.info("catching up %d window(s)", len(emit))
            self._emit(list(emit.values()))

    def _refresh(self) -> None:
        mono = self.clock.monotonic()
        if mono - self._refreshed_at < self.config.refresh_interval:
            return
        self._refreshed_at = mono
        try:
            changes = self.source.poll()
        except Exception as exc:
            log.warning("reading schedule changes failed (%s)", type(exc).__name__)
            return
        if changes is None:
            return
        if not self.active:
            return
        now = self.clock.now()
        for name in changes.removed:
            self.planner.remove(name)
        for spec in changes.upserted:
            self.planner.add(spec, now)  # a staged slot of this job is planned again
        self._drop_staged([*changes.removed, *(spec.name for spec in changes.upserted)])
        if changes.upserted or changes.removed:
            log.info("schedules changed: %d (re)planned, %d stopped", len(changes.upserted),
                     len(changes.removed))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """Counters for logs and the ``info`` banner."""
        stats = self.emitter.stats
        return {"active": self.active, "jobs": len(self.planner), "recorded": stats.recorded,
                "published": stats.published, "deduplicated": stats.deduplicated,
                "missed": stats.missed, "republished": stats.republished}  # fmt: skip
