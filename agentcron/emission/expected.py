"""Windows expected vs recorded: the one service the watchdog asks.

The schedules say which windows a job owes over a range (:meth:`ExpectedWindows.between`), the
ledger says which of them it holds (:meth:`~ExpectedWindows.recorded`). A window with no row is
sent the beat's way, recorded ``scheduled`` before it is published (:meth:`~ExpectedWindows.send`,
through the :class:`~agentcron.emission.emitter.Emitter`); a row whose message was lost is
published once more (:meth:`~ExpectedWindows.resend`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from agentcron.clock import Clock
from agentcron.emission.emitter import Emitter, WindowLedger
from agentcron.emission.envelope import Emission, emission_for
from agentcron.emission.publisher import Outgoing, Publisher
from agentcron.jobs import JobSpec
from agentcron.ledger.records import RunRecord

MAX_SLOTS_PER_JOB = 1000
"""Slots of one job looked at per range: a job firing every second owes no more than this."""


class RecordedWindows(WindowLedger, Protocol):
    """The ledger as this service reads and writes it."""

    def get_many(self, window_keys: Sequence[str]) -> dict[str, RunRecord]:
        """The rows of ``window_keys`` that exist, by window key."""
        ...


class ExpectedWindows:
    """What the schedules expect, what the ledger recorded, and sending what is owed."""

    def __init__(self, ledger: RecordedWindows, publisher: Publisher, clock: Clock) -> None:
        self.ledger = ledger
        self.publisher = publisher
        self.emitter = Emitter(ledger, publisher, clock)

    @staticmethod
    def between(spec: JobSpec, start: datetime, end: datetime,
                trigger: str = "watchdog") -> list[Emission]:  # fmt: skip
        """The windows of ``spec``'s slots in ``(start, end]`` (the first
        :data:`MAX_SLOTS_PER_JOB` slots), one per window, each with its first slot."""
        out: dict[str, Emission] = {}
        for count, slot in enumerate(spec.schedule.fires_between(start, end), 1):
            emission = emission_for(spec, slot, trigger)
            out.setdefault(emission.window.window_key, emission)
            if count >= MAX_SLOTS_PER_JOB:
                break
        return list(out.values())

    def recorded(self, emissions: Iterable[Emission]) -> dict[str, RunRecord]:
        """The ledger's rows of ``emissions``, by window key (a window with no row is absent)."""
        return self.ledger.get_many([e.window.window_key for e in emissions])

    def send(self, emissions: Sequence[Emission]) -> bool:
        """Record windows ``scheduled``, then publish those this call recorded; False if the
        broker did not take them (the rows stay ``scheduled``)."""
        return bool(self.emitter.emit(emissions))

    def resend(self, batch: Sequence[Outgoing]) -> None:
        """Publish recorded windows' messages once more; raises when the broker fails."""
        self.publisher.publish(batch)
