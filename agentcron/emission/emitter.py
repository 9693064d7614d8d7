"""Record before publish: the emitter of the beat.

Each due window is first recorded ``scheduled`` in the ledger (one bulk insert); only windows
this call inserted are published, so a second beat, or a re-send after a restart, publishes
nothing twice. If publishing fails, the rows stay ``scheduled`` and the emitter owes a
re-publication: when the broker answers again it publishes the ledger's pending rows (scenario
8: plain Celery beat loses that window, since ``reserve()`` advances before publishing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agentcron.clock import Clock
from agentcron.emission.envelope import Emission
from agentcron.emission.publisher import Outgoing, Publisher
from agentcron.ledger.records import NewWindow, RunRecord, RunState
from agentcron.messages import RunMessage

log = logging.getLogger(__name__)


class WindowLedger(Protocol):
    """The part of :class:`agentcron.ledger.store.Ledger` the beat uses."""

    def record_scheduled(self, windows: Sequence[NewWindow]) -> list[str]:
        """Insert windows as 'scheduled'; the keys that were new."""
        ...

    def pending(self, older_than: datetime, limit: int = 1000, *,
                jobs: Collection[str] | None = None) -> list[RunRecord]:  # fmt: skip
        """Rows still 'scheduled' since ``older_than``."""
        ...

    def mark_terminal(self, window: NewWindow, state: RunState, reason: str) -> bool:
        """Record a terminal state with a reason."""
        ...


@dataclass
class EmitStats:
    """Counters of what the emitter did."""

    recorded: int = 0
    published: int = 0
    deduplicated: int = 0
    publish_failures: int = 0
    republished: int = 0
    missed: int = 0


Route = Callable[[str], tuple[str, str] | None]
"""job name -> (task, queue), or None when the job is unknown now."""


class Emitter:
    """Record windows, then publish the new ones; re-publish what a broker outage left."""

    def __init__(self, ledger: WindowLedger, publisher: Publisher, clock: Clock,
                 *, pending_batch: int = 100_000) -> None:  # fmt: skip
        self.ledger = ledger
        self.publisher = publisher
        self.clock = clock
        self.pending_batch = pending_batch
        self.owed_until: datetime | None = None
        self.stats = EmitStats()
        self._failing = 0  # publishes failed in a row

    @property
    def owed(self) -> bool:
        """True while rows recorded before :attr:`owed_until` may be unpublished."""
        return self.owed_until is not None

    def owe(self, until: datetime) -> None:
        """Re-publish rows still 'scheduled' that were recorded up to ``until``."""
        self.owed_until = until if self.owed_until is None else max(self.owed_until, until)

    def emit(self, emissions: Sequence[Emission]) -> int:
        """Record and publish ``emissions``; the number published (0 if the broker failed)."""
        if not emissions:
            return 0
        return self._publish(self._outgoing_of(emissions, self._record(emissions)))

    def emit_stream(self, chunks: Iterable[Sequence[Emission]]) -> list[Emission]:
        """Record and publish chunk after chunk, recording the next chunk (in a thread: the
        database works while we publish) before publishing the previous one. Each window is
        still recorded before it is published. Returns the emissions whose recording failed.
        """
        failed: list[Emission] = []
        with ThreadPoolExecutor(1, thread_name_prefix="beat-record") as pool:
            previous: tuple[Sequence[Emission], Future[set[str]]] | None = None
            for chunk in chunks:
                if not chunk:
                    continue
                current = (chunk, pool.submit(self._record, chunk))
                if previous is not None:
                    self._publish_recorded(*previous, failed)
                previous = current
            if previous is not None:
                self._publish_recorded(*previous, failed)
        return failed

    def _publish_recorded(self, chunk: Sequence[Emission], future: Future[set[str]],
                          failed: list[Emission]) -> None:  # fmt: skip
        try:
            fresh = future.result()
        except Exception as exc:  # the ledger is down: nothing recorded, nothing published
            log.warning("recording %d window(s) failed (%s: %s)", len(chunk),
                        type(exc).__name__, exc)  # fmt: skip
            failed.extend(chunk)
            return
        fast = getattr(self.publisher, "publish_windows", None)
        if fast is None:
            self._publish(self._outgoing_of(chunk, fresh))
            return
        windows = [(e.task, e.queue, e.window) for e in chunk if e.window.window_key in fresh]
        self._publish(windows, publish=fast)

    def _record(self, emissions: Sequence[Emission]) -> set[str]:
        fresh = set(self.ledger.record_scheduled([e.window for e in emissions]))
        self.stats.recorded += len(fresh)
        self.stats.deduplicated += len(emissions) - len(fresh)
        return fresh

    @staticmethod
    def _outgoing_of(emissions: Sequence[Emission], fresh: set[str]) -> list[Outgoing]:
        return [Outgoing(e.task, e.queue, e.message()) for e in emissions
                if e.window.window_key in fresh]  # fmt: skip

    def mark_missed(self, windows: Sequence[tuple[NewWindow, str]]) -> int:
        """Record windows the beat will not run as 'missed' with their reason."""
        mark = self.ledger.mark_terminal
        done = sum(1 for w, reason in windows if mark(w, RunState.MISSED, reason))
        self.stats.missed += done
        return done

    def republish_owed(self, route: Route) -> int:
        """After a publish failure (or on taking over), publish the rows still 'scheduled'."""
        if self.owed_until is None:
            return 0
        rows = self.ledger.pending(self.owed_until, self.pending_batch)
        batch = [o for o in (self._outgoing(r, route) for r in rows) if o is not None]
        total = self._publish(batch, counts_as_new=False)
        if total < len(batch):
            return 0  # still owed: the broker is still down
        if len(rows) >= self.pending_batch:
            log.warning("more than %d windows pending; the watchdog re-enqueues the rest", self.pending_batch)
        self.owed_until = None
        self.stats.republished += total
        if total:
            log.info("re-published %d window(s) left 'scheduled'", total)
        return total

    def _outgoing(self, row: RunRecord, route: Route) -> Outgoing | None:
        target = route(row.job)
        if target is None:
            return None
        return Outgoing(target[0], target[1], RunMessage.from_record(row, row.next_attempt))

    def _publish(self, batch: Sequence[Any], counts_as_new: bool = True,
                 publish: Callable[[Sequence[Any]], None] | None = None) -> int:  # fmt: skip
        if not batch:
            return 0
        try:
            (publish or self.publisher.publish)(batch)
        except Exception as exc:
            self.owe(self.clock.now())
            self.stats.publish_failures += 1
            self._failing += 1
            level = logging.DEBUG if self._failing > 1 else logging.WARNING
            log.log(level, "publishing %d window(s) failed (%s: %s); they stay 'scheduled' and "
                    "are re-published when the broker answers", len(batch),
                    type(exc).__name__, exc)  # fmt: skip
            return 0
        if self._failing:  # one warning per outage, not one per tick
            log.info("the broker answers again after %d failed publish(es)", self._failing)
            self._failing = 0
        if counts_as_new:
            self.stats.published += len(batch)
        return len(batch)
