"""Budget periods: pure time math in the budget's timezone (DST-correct, no clock reads).

``per`` is ``window`` (the run's own window), ``day``, ``week`` (ISO, from Monday) or ``month``.
A period starts at local midnight; a midnight that a DST change skips maps to the first valid
instant after the gap (as windows do). Everything returned is aware UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from agentcron.instants import get_timezone

PERIODS = ("window", "day", "week", "month")


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _first_day(local: date, per: str) -> date:
    if per == "day":
        return local
    if per == "week":
        return local - timedelta(days=local.weekday())
    if per == "month":
        return local.replace(day=1)
    raise ValueError(f"unknown budget period {per!r}; one of {', '.join(PERIODS)}")


def _next_first_day(first: date, per: str) -> date:
    if per == "day":
        return first + timedelta(days=1)
    if per == "week":
        return first + timedelta(days=7)
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_bounds(now: datetime, per: str, tz: str | tzinfo = "UTC") -> tuple[datetime, datetime]:
    """``[start, end)`` (aware UTC) of the calendar period of ``per`` that contains ``now``."""
    zone = get_timezone(tz) if isinstance(tz, str) else tz
    local = now.astimezone(zone).date()
    first = _first_day(local, per)
    start, end = _midnight(first, zone), _midnight(_next_first_day(first, per), zone)
    if now.astimezone(UTC) < start:  # a local midnight inside a DST gap lands after 'now'
        return period_bounds(now - timedelta(hours=3), per, zone)
    return start, end
