"""Schedule expressions: pure time math, no I/O, no clock reads.

One grammar serves ``Job.schedule`` and the in-process schedulers' ``schedule_expr``:

* 5-field cron (``0 6 * * mon-fri``), ``cron:<5 fields>``, ``@hourly @daily @midnight @weekly
  @monthly @yearly @annually`` and the words ``hourly daily weekly``: wall-clock schedules in the
  schedule's timezone, matched by cronsim (Vixie cron's DST policy) behind this interface;
* intervals ``30m``, ``2h``, ``*/30m``, ``*/10s``, ``*/N`` (seconds), a bare integer (seconds),
  ``every 15 minutes``: anchored to the Unix epoch, or to an explicit ``start``;
* one-shots ``at:2026-03-17T06:00:00Z``.

Every instant going in or out is an aware datetime; every instant coming out is UTC.
"""

from __future__ import annotations

import functools
import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from cronsim import CronSim

from agentcron.instants import format_instant, get_timezone, parse_instant, to_utc
from agentcron.schedule_syntax import (
    MACROS,
    MAX_INTERVAL,
    bad_expression,
    check_cron_fields,
    interval_seconds,
)

__all__ = ["EPOCH", "MAX_INTERVAL", "CronSchedule", "IntervalSchedule", "OneShotSchedule",
           "Schedule", "parse_schedule"]  # fmt: skip

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

class Schedule(ABC):
    """A pure function from an instant to the next fire time."""

    expr: str
    tz: tzinfo

    @abstractmethod
    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (UTC), or None if there is none."""

    @property
    @abstractmethod
    def period(self) -> timedelta | None:
        """The nominal time between fires (the shortest gap); None for a one-shot."""

    @abstractmethod
    def describe(self) -> str:
        """A human sentence for the schedule."""

    def fires_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every fire time ``t`` with ``start < t <= end``, in order."""
        end = to_utc(end, "end")
        current = self.next_fire(start)
        while current is not None and current <= end:
            yield current
            current = self.next_fire(current)

    def previous_fire(self, at_or_before: datetime, horizon: timedelta) -> datetime | None:
        """The last fire time ``<= at_or_before`` within ``horizon`` before it."""
        last = None
        for fire in self.fires_between(at_or_before - horizon, at_or_before):
            last = fire
        return last

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.expr!r}, tz={self.tz!s})"


class CronSchedule(Schedule):
    """A 5-field cron expression in a timezone (Vixie cron's DST policy, via cronsim)."""

    def __init__(self, expr: str, fields: str, tz: tzinfo, start: datetime | None = None) -> None:
        self.expr = expr
        self.fields = fields
        self.tz = tz
        self.start = start
        self._memo: tuple[datetime, datetime | None] | None = None

    def next_fire(self, after: datetime) -> datetime | None:
        after = to_utc(after, "after")
        if self.start is not None and after < self.start:
            after = self.start - _ONE_US
        memo = self._memo
        if memo is not None and memo[0] == after:
            return memo[1]
        result: datetime | None = None
        try:
            sim = CronSim(self.fields, after.astimezone(self.tz))
            # In a repeated (fall-back) hour, cronsim's first answer can be the hour's first
            # occurrence, before ``after``: the next one is the answer.
            for _ in range(4):
                result = next(sim).astimezone(UTC)
                if result > after:
                    break
        except (StopIteration, OverflowError):  # no fire before the calendar ends (year 9999)
            result = None
        if result is not None and result <= after:  # never answer a time that is not later
            result = None
        self._memo = (after, result)
        return result

    @functools.cached_property
    def _period(self) -> timedelta:
        reference = datetime(2026, 1, 5, tzinfo=UTC)
        fires = list(itertools.islice(self.fires_between(reference, reference + timedelta(days=800)), 8))
        gaps = [b - a for a, b in itertools.pairwise(fires)]
        return min(gaps) if gaps else timedelta(days=365)

    @property
    def period(self) -> timedelta | None:
        return self._period

    def describe(self) -> str:
        text = CronSim(self.fields, datetime(2026, 1, 1)).explain()
        return f"{text} ({self.tz!s})"


class IntervalSchedule(Schedule):
    """Every ``seconds``, on a grid anchored to the epoch or to an explicit start."""

    def __init__(self, expr: str, seconds: int, tz: tzinfo, start: datetime | None = None) -> None:
        self.expr = expr
        self.seconds = seconds
        self.tz = tz
        self.start = start
        self.anchor = start if start is not None else EPOCH
        self._step = timedelta(seconds=seconds)

    def next_fire(self, after: datetime) -> datetime | None:
        after = to_utc(after, "after")
        if self.start is not None and after < self.start:
            return self.start
        steps = (after - self.anchor) // self._step + 1
        try:
            return self.anchor + steps * self._step
        except OverflowError:  # past the end of the calendar (year 9999)
            return None

    def count_between(self, start: datetime, end: datetime) -> int:
        """How many fire times ``t`` with ``start < t <= end`` (arithmetic, no iteration)."""
        start, end = to_utc(start, "start"), to_utc(end, "end")
        if self.start is not None and start < self.start:
            start = self.start - _ONE_US
        if end <= start:
            return 0
        return max(0, (end - self.anchor) // self._step - (start - self.anchor) // self._step)

    @property
    def period(self) -> timedelta:
        return self._step

    def describe(self) -> str:
        units = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
        name, size = next((u, n) for u, n in units if self.seconds % n == 0)
        count = self.seconds // size
        every = f"every {name}" if count == 1 else f"every {count} {name}s"
        anchor = format_instant(self.anchor)
        return f"{every} (anchored to {anchor})"


class OneShotSchedule(Schedule):
    """Fires once, at ``at``."""

    def __init__(self, expr: str, at: datetime, tz: tzinfo) -> None:
        self.expr = expr
        self.at = at
        self.tz = tz

    def next_fire(self, after: datetime) -> datetime | None:
        return self.at if to_utc(after, "after") < self.at else None

    @property
    def period(self) -> None:
        return None

    def describe(self) -> str:
        return f"once, at {format_instant(self.at)}"


@functools.lru_cache(maxsize=65536)
def parse_schedule(expr: str, tz: str = "UTC", start: datetime | None = None) -> Schedule:
    """Parse ``expr`` in timezone ``tz``; raise :class:`ConfigError` naming what is wrong.

    Results are cached: equal arguments share one immutable-in-practice schedule object.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise bad_expression("schedule", str(expr), "empty schedule expression")
    zone = get_timezone(tz)
    if start is not None:
        start = to_utc(start, "start")
    text = " ".join(expr.strip().split())
    lowered = text.lower()
    if lowered.startswith("at:"):
        return OneShotSchedule(expr, parse_instant(text[3:], zone), zone)
    if lowered.startswith("cron:"):
        text = text[5:].strip()
        lowered = text.lower()
    elif (seconds := interval_seconds(lowered)) is not None:
        return IntervalSchedule(expr, seconds, zone, start)
    if lowered in MACROS:
        text = MACROS[lowered]
    elif lowered.startswith("@"):
        raise bad_expression("schedule", expr, f"unknown macro; known: {', '.join(sorted(MACROS))}")
    elif len(text.split()) != 5:
        raise bad_expression(
            "schedule",
            expr,
            "not a 5-field cron expression, an @macro, an interval (30m, every 15 minutes)"
            " or a one-shot (at:ISO8601)",
        )
    check_cron_fields(text)
    return CronSchedule(expr, text, zone, start)
