"""Windows: what must happen exactly once. Pure functions of a slot, a granularity and a timezone.

A *slot* is the nominal fire time a schedule produced (aware UTC). A *window* groups slots:
``slot`` (the default, one window per slot), or the ``hour``, ``day``, ISO ``week`` or ``month``
that contains the slot in the job's timezone. The *window key* names it:
``"{job}@{window_start_utc:%Y-%m-%dT%H:%M:%SZ}"``; it travels in the task message and is never
recomputed on a worker.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal, get_args

from agentcron.errors import ConfigError, Problem
from agentcron.instants import format_instant, get_timezone, to_utc

Granularity = Literal["slot", "hour", "day", "week", "month"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)

JOB_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
QUEUE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}"
# Every pattern is matched with fullmatch (``$`` would accept a trailing newline) and ASCII only.
_JOB_NAME = re.compile(JOB_NAME_PATTERN, re.ASCII)
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN, re.ASCII)
_WINDOW_KEY = re.compile(
    rf"(?P<job>{JOB_NAME_PATTERN})@(?P<start>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}Z)",
    re.ASCII,
)


def is_job_name(name: object) -> bool:
    """Whether ``name`` may name a job (letters, digits, ``_ . -``; no ``@``, no spaces)."""
    return isinstance(name, str) and _JOB_NAME.fullmatch(name) is not None


def is_queue_name(name: object) -> bool:
    """Whether ``name`` may name a queue (letters, digits, ``_ . : -``; 1-128 characters)."""
    return isinstance(name, str) and _QUEUE_NAME.fullmatch(name) is not None


def _local_midnight(day: datetime, tz: tzinfo) -> datetime:
    # fold=0 maps a nonexistent local midnight to the first valid instant after the gap.
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def window_start(slot: datetime, granularity: str = "slot", tz: str | tzinfo = "UTC") -> datetime:
    """The start (aware UTC) of the window of ``granularity`` that contains ``slot``."""
    slot = to_utc(slot, "slot")
    zone = get_timezone(tz) if isinstance(tz, str) else tz
    try:
        return _window_start(slot, granularity, zone)
    except OverflowError as exc:  # a slot within a day of the calendar's ends, in a far zone
        reason = "its window lies outside the calendar (years 1-9999)"
        raise ConfigError([Problem(None, "slot", format_instant(slot), reason)]) from exc


def _window_start(slot: datetime, granularity: str, zone: tzinfo) -> datetime:
    if granularity == "slot":
        return slot.replace(microsecond=0)
    local = slot.astimezone(zone)
    if granularity == "hour":
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        # A local hour that a DST change shortened may begin before this slot's own offset.
        return min(start, slot)
    if granularity == "day":
        return _local_midnight(local, zone)
    if granularity == "week":
        monday = local - timedelta(days=local.weekday())
        return _local_midnight(monday, zone)
    if granularity == "month":
        return _local_midnight(local.replace(day=1), zone)
    raise ConfigError(
        [Problem(None, "window", granularity, f"unknown window; one of {', '.join(GRANULARITIES)}")]
    )


def next_window_bound(start: datetime, granularity: str, tz: str | tzinfo = "UTC") -> datetime:
    """An instant no later than the start of the window after the one starting at ``start``.

    Exact for ``day``, ``week`` and ``month``; for ``hour``, one hour on, or 30 minutes on where
    a DST change shortened that local hour (it is never shorter in real time); ``slot`` windows
    hold one slot, so the next one may start at once. Lets a caller jump from window to window
    instead of visiting every slot.
    """
    zone = get_timezone(tz) if isinstance(tz, str) else tz
    if granularity == "slot":
        return start + timedelta(microseconds=1)
    if granularity == "hour":
        hour_on = start + timedelta(hours=1)
        same = _window_start(hour_on - timedelta(microseconds=1), "hour", zone) == start
        return hour_on if same else start + timedelta(minutes=30)
    local = start.astimezone(zone)
    if granularity == "day":
        return _local_midnight(local + timedelta(days=1), zone)
    if granularity == "week":
        return _local_midnight(local + timedelta(days=7 - local.weekday()), zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return _local_midnight(datetime(year, month, 1), zone)


def window_key(job: str, start: datetime) -> str:
    """``"{job}@{start:%Y-%m-%dT%H:%M:%SZ}"``."""
    if not is_job_name(job):
        raise ConfigError([Problem(job, "name", str(job), "not a valid job name")])
    return join_window_key(job, format_instant(start))


def join_window_key(job: str, start_text: str) -> str:
    """The one spelling of a window key from a valid job name and a window start already
    formatted by :func:`~agentcron.schedules.format_instant` (the beat's fast path formats each
    instant once for every job that shares it)."""
    return f"{job}@{start_text}"


def parse_window_key(key: str) -> tuple[str, datetime]:
    """Split a window key into ``(job, window_start)``; reject anything malformed."""
    match = _WINDOW_KEY.fullmatch(key) if isinstance(key, str) else None
    if match is None:
        raise ValueError(f"malformed window key {key!r}; expected 'job@YYYY-MM-DDTHH:MM:SSZ'")
    try:
        # the pattern fixed the shape; fromisoformat checks the ranges (strptime is ~10x slower)
        start = datetime.fromisoformat(match["start"][:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"malformed window key {key!r}: {exc}") from exc
    return match["job"], start
