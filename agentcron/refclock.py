"""One reference clock for every process: the ledger's (PostgreSQL ``now()``) or Redis ``TIME``.

A process whose wall clock is off (a worker 90 s fast, a beat behind) must not decide anything by
it: windows would misfire on arrival, be emitted before their slot, or leases expire early.
:class:`ReferenceClock` is the injected :class:`~agentcron.clock.Clock` of beat and workers: its
``now()`` is the local wall clock plus an *offset* measured against the reference at start and
refreshed every ``refresh`` seconds by a daemon thread (half the round trip is allowed for, as in
NTP's simplest form); ``monotonic()`` and the sleeps are the local ones. An offset beyond
``warn_after`` seconds is logged as a warning and every offset is exported as the
``agentcron_clock_offset_seconds`` gauge. When the reference cannot be read the last offset
stays (0 before the first reading), with a warning.

The reference is the ledger when it is PostgreSQL (the authority, shared by all processes);
otherwise Redis ``TIME`` when a Redis is configured; an embedded SQLite setup runs on one machine
and uses the local clock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agentcron.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from agentcron.settings import Settings

log = logging.getLogger("agentcron.clock")
Measure = Callable[[], datetime]
"""Reads the reference's current time (aware UTC); raises when it cannot."""


class ReferenceClock:
    """A :class:`~agentcron.clock.Clock` corrected to the reference time (see the module doc)."""

    def __init__(self, base: Clock = SYSTEM_CLOCK, measure: Measure | None = None, *,
                 refresh: float = 30.0, warn_after: float = 1.0) -> None:  # fmt: skip
        self.base = base
        self.refresh = refresh
        self.warn_after = warn_after
        self.offset = 0.0
        self.source = "local"
        self._measure: Measure | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._warned = False
        self._lock = threading.Lock()
        if measure is not None:
            self.attach(measure)

    def now(self) -> datetime:
        if self._measure is not None and self._pid != os.getpid():
            self._start()  # a forked child (prefork): its own refresh thread
        return self.base.now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await self.base.asleep(seconds)

    def attach(self, measure: Measure, source: str = "reference") -> None:
        """Use ``measure`` as the reference: one reading now, then a refresh thread."""
        self._measure, self.source = measure, source
        self.measure_now()
        self._start()

    def measure_now(self) -> float | None:
        """Read the reference once; the new offset in seconds, or None if it failed."""
        if self._measure is None:
            return None
        before, local = self.base.monotonic(), self.base.now()
        try:
            reference = self._measure()
        except Exception as exc:
            log.warning("reading the reference clock (%s) failed (%s); offset stays %.3fs",
                        self.source, type(exc).__name__, self.offset)  # fmt: skip
            return None
        trip = self.base.monotonic() - before
        self.offset = (reference - local).total_seconds() - trip / 2
        self._report()
        return self.offset

    def _report(self) -> None:
        from agentcron.series import get_metrics

        get_metrics().clock_offset.set(self.offset)
        off = abs(self.offset) > self.warn_after
        if off and not self._warned:
            log.warning("this process's clock is %.1fs %s the reference (%s); agentcron uses the "
                        "reference time, fix the host's clock (NTP)", abs(self.offset),
                        "behind" if self.offset > 0 else "ahead of", self.source)  # fmt: skip
        elif not off and self._warned:
            log.info("this process's clock is back within %.1fs of the reference", self.warn_after)
        self._warned = off

    def _start(self) -> None:
        with self._lock:  # one refresh thread per process, however many threads ask at once
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="agentcron-refclock",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def _loop(self) -> None:
        pid, wake = os.getpid(), threading.Event()
        while not wake.wait(self.refresh) and pid == self._pid:
            self.measure_now()


def database_time(engine: Engine) -> Measure:
    """PostgreSQL's ``clock_timestamp()`` on ``engine`` (the ledger's server clock)."""
    from sqlalchemy import text

    def measure() -> datetime:
        with engine.connect() as conn:
            value = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        return value.astimezone(UTC) if isinstance(value, datetime) else _never(value)

    return measure


def redis_time(url: str) -> Measure:
    """Redis ``TIME`` at ``url``."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)

    def measure() -> datetime:
        seconds, micros = client.time()
        return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)

    return measure


def _never(value: object) -> datetime:
    raise TypeError(f"the database returned {type(value).__name__} for clock_timestamp()")


def attach_reference(clock: ReferenceClock, settings: Settings, engine: Engine | None) -> None:
    """Point ``clock`` at the ledger (PostgreSQL) or Redis; leave it local for SQLite alone."""
    if engine is not None and engine.dialect.name == "postgresql":
        clock.attach(database_time(engine), "database now()")
    elif settings.redis_url:
        clock.attach(redis_time(settings.redis_url), "Redis TIME")
