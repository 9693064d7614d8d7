"""Instants and timezones: ISO 8601 in, ``YYYY-MM-DDTHH:MM:SSZ`` out, always aware, always UTC.

Pure functions, no clock reads; :mod:`agentcron.schedules` and every module that reads or writes
a time go through them.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentcron.errors import ConfigError, Problem

MIN_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
MAX_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""Instants outside these are refused: a day of margin keeps conversions to any zone in range."""
_ONE_US = timedelta(microseconds=1)


def _bad(field: str, value: str, reason: str) -> ConfigError:
    return ConfigError([Problem(None, field, value, reason)])


def to_utc(when: datetime, name: str = "time") -> datetime:
    """``when`` in UTC; a naive datetime is an error, never silently local time."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {when.isoformat()}")
    return when.astimezone(UTC)


def parse_instant(text: str, tz: tzinfo = UTC) -> datetime:
    """Parse ISO 8601 (``Z`` allowed); a time without an offset is read in ``tz``."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise _bad("time", text, "not an ISO 8601 date-time") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        when = MIN_INSTANT - _ONE_US if when.year < 5000 else MAX_INSTANT + _ONE_US
    if not MIN_INSTANT <= when <= MAX_INSTANT:
        reason = f"outside the supported range {format_instant(MIN_INSTANT)} .. {format_instant(MAX_INSTANT)}"
        raise _bad("time", text, reason)
    return when


@functools.lru_cache(maxsize=512)
def get_timezone(name: str) -> tzinfo:
    """The IANA zone called ``name`` (``UTC`` is :data:`datetime.UTC`)."""
    if name in ("UTC", "Etc/UTC", "Z", "utc"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _bad("tz", name, "unknown IANA timezone") from exc


def format_instant(when: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds; the year always has four digits)."""
    u = to_utc(when)
    return f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}Z"
