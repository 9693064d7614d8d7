"""Schedule grammar and DST policy: tables of (expression, tz, after, expected)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcron.errors import ConfigError
from agentcron.instants import format_instant, parse_instant
from agentcron.schedules import CronSchedule, IntervalSchedule, OneShotSchedule, parse_schedule


def fires(expr: str, after: str, n: int, tz: str = "UTC") -> list[str]:
    schedule = parse_schedule(expr, tz)
    out: list[str] = []
    current = schedule.next_fire(parse_instant(after))
    while current is not None and len(out) < n:
        out.append(format_instant(current))
        current = schedule.next_fire(current)
    return out


GRAMMAR = [
    ("0 6 * * *", "UTC", "2026-03-17T05:00:00Z", ["2026-03-17T06:00:00Z", "2026-03-18T06:00:00Z"]),
    ("0 6 * * *", "UTC", "2026-03-17T06:00:00Z", ["2026-03-18T06:00:00Z", "2026-03-19T06:00:00Z"]),
    ("0 6 * * mon-fri", "UTC", "2026-03-20T07:00:00Z",
     ["2026-03-23T06:00:00Z", "2026-03-24T06:00:00Z"]),
    ("0 9 * * MON,WED", "UTC", "2026-03-17T00:00:00Z",
     ["2026-03-18T09:00:00Z", "2026-03-23T09:00:00Z"]),
    ("*/15 * * * *", "UTC", "2026-03-17T06:07:00Z",
     ["2026-03-17T06:15:00Z", "2026-03-17T06:30:00Z"]),
    ("0 0 1 jan,jul *", "UTC", "2026-03-17T00:00:00Z",
     ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
    ("0 0 13 * 5", "UTC", "2026-03-01T00:00:00Z",  # day-of-month OR day-of-week
     ["2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z"]),
    ("cron:30 4 * * *", "UTC", "2026-03-17T00:00:00Z",
     ["2026-03-17T04:30:00Z", "2026-03-18T04:30:00Z"]),
    ("@hourly", "UTC", "2026-03-17T06:10:00Z", ["2026-03-17T07:00:00Z", "2026-03-17T08:00:00Z"]),
    ("@daily", "UTC", "2026-03-17T06:10:00Z", ["2026-03-18T00:00:00Z", "2026-03-19T00:00:00Z"]),
    ("@midnight", "UTC", "2026-03-17T06:10:00Z", ["2026-03-18T00:00:00Z"]),
    ("@weekly", "UTC", "2026-03-17T06:10:00Z", ["2026-03-22T00:00:00Z", "2026-03-29T00:00:00Z"]),
    ("@monthly", "UTC", "2026-03-17T06:10:00Z", ["2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"]),
    ("@yearly", "UTC", "2026-03-17T06:10:00Z", ["2027-01-01T00:00:00Z"]),
    ("@annually", "UTC", "2026-03-17T06:10:00Z", ["2027-01-01T00:00:00Z"]),
    ("hourly", "UTC", "2026-03-17T06:10:00Z", ["2026-03-17T07:00:00Z"]),
    ("daily", "America/New_York", "2026-03-17T06:10:00Z", ["2026-03-18T04:00:00Z"]),
    ("weekly", "UTC", "2026-03-17T06:10:00Z", ["2026-03-22T00:00:00Z"]),
    ("30m", "UTC", "2026-01-01T00:10:00Z", ["2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"]),
    ("*/30m", "UTC", "2026-01-01T00:10:00Z", ["2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"]),
    ("*/10s", "UTC", "2026-01-01T00:00:05Z", ["2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"]),
    ("*/45", "UTC", "2026-01-01T00:00:00Z", ["2026-01-01T00:00:45Z", "2026-01-01T00:01:30Z"]),
    ("90", "UTC", "2026-01-01T00:00:00Z", ["2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"]),
    ("2h", "UTC", "2026-01-01T01:00:00Z", ["2026-01-01T02:00:00Z", "2026-01-01T04:00:00Z"]),
    ("every 15 minutes", "UTC", "2026-01-01T00:01:00Z",
     ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z"]),
    ("every 2 hours", "UTC", "2026-01-01T00:01:00Z", ["2026-01-01T02:00:00Z"]),
    ("every minute", "UTC", "2026-01-01T00:00:30Z", ["2026-01-01T00:01:00Z"]),
    ("at:2026-03-17T06:00:00Z", "UTC", "2026-01-01T00:00:00Z", ["2026-03-17T06:00:00Z"]),
    ("at:2026-03-17T06:00:00", "Europe/Berlin", "2026-01-01T00:00:00Z", ["2026-03-17T05:00:00Z"]),
    ("at:2026-03-17T06:00:00Z", "UTC", "2026-03-17T06:00:00Z", []),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), GRAMMAR)
def test_grammar(expr: str, tz: str, after: str, expected: list[str]) -> None:
    assert fires(expr, after, len(expected) or 1, tz) == expected


DST = [
    # America/New_York: spring forward 2026-03-08 02:00 -> 03:00; fall back 2026-11-01 02:00 -> 01:00
    ("30 2 * * *", "America/New_York", "2026-03-07T17:00:00Z",
     ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
    ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
     ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]),
    ("0 9 * * *", "America/New_York", "2026-03-07T00:00:00Z",
     ["2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z"]),
    ("30 * * * *", "America/New_York", "2026-11-01T04:00:00Z",
     ["2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z",
      "2026-11-01T07:30:00Z"]),
    ("30 * * * *", "America/New_York", "2026-03-08T06:00:00Z",
     ["2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z", "2026-03-08T08:30:00Z"]),
    # Europe/Berlin: spring forward 2026-03-29 02:00 -> 03:00; fall back 2026-10-25 03:00 -> 02:00
    ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
     ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
    ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
     ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
    ("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
     ["2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"]),
    ("15 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z",
     ["2026-03-29T00:15:00Z", "2026-03-29T01:15:00Z", "2026-03-29T02:15:00Z"]),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), DST)
def test_dst_policy(expr: str, tz: str, after: str, expected: list[str]) -> None:
    assert fires(expr, after, len(expected), tz) == expected


@pytest.mark.parametrize(
    ("expr", "field", "text"),
    [
        ("61 * * * *", "minute", "61"),
        ("*/0 * * * *", "minute", "*/0"),
        ("1,,2 * * * *", "minute", ""),
        ("0 abc * * *", "hour", "abc"),
        ("0 0 30 2 *", "day-of-month", "30"),
        ("0 0 * 13 *", "month", "13"),
        ("0 0 * * 9", "day-of-week", "9"),
    ],
)
def test_bad_cron_names_field_and_text(expr: str, field: str, text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_schedule(expr)
    message = str(info.value)
    assert field in message and repr(text if text else "1,,2")[1:-1] in message


@pytest.mark.parametrize(
    "expr", ["", "   ", "0 6 * *", "every 0 minutes", "*/0", "0", "5 parsecs", "@fortnightly",
             "at:yesterday", "1 2 3 4 5 6"],
)  # fmt: skip
def test_bad_expressions_are_rejected(expr: str) -> None:
    with pytest.raises(ConfigError):
        parse_schedule(expr)


def test_unknown_timezone() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        parse_schedule("0 6 * * *", "Mars/Olympus")


def test_interval_is_epoch_anchored_or_start_anchored() -> None:
    after = parse_instant("2026-01-01T00:07:00Z")
    assert parse_schedule("10m").next_fire(after) == parse_instant("2026-01-01T00:10:00Z")
    start = parse_instant("2026-01-01T00:03:00Z")
    anchored = parse_schedule("10m", "UTC", start)
    assert anchored.next_fire(after) == parse_instant("2026-01-01T00:13:00Z")
    assert anchored.next_fire(parse_instant("2025-12-31T00:00:00Z")) == start


def test_kinds_periods_and_descriptions() -> None:
    cron = parse_schedule("0 6 * * mon-fri", "Europe/Berlin")
    assert isinstance(cron, CronSchedule) and cron.period == timedelta(days=1)
    assert "Monday through Friday" in cron.describe()
    interval = parse_schedule("every 15 minutes")
    assert isinstance(interval, IntervalSchedule) and interval.period == timedelta(minutes=15)
    assert interval.describe().startswith("every 15 minutes")
    once = parse_schedule("at:2026-03-17T06:00:00Z")
    assert isinstance(once, OneShotSchedule) and once.period is None
    assert parse_schedule("@weekly").period == timedelta(days=7)


def test_naive_after_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("@daily").next_fire(datetime(2026, 1, 1))


EXPRESSIONS = ["*/7 * * * *", "0 6 * * mon-fri", "30 1 * * *", "30 2 * * *", "15,45 */3 * * *",
               "17m", "*/45s", "every 3 hours", "0 0 L * *", "@weekly"]  # fmt: skip
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"]
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES), instants)
def test_next_fire_strictly_increases(expr: str, tz: str, after: datetime) -> None:
    schedule = parse_schedule(expr, tz)
    first = schedule.next_fire(after)
    assert first is not None and first > after and first.tzinfo is UTC
    second = schedule.next_fire(first)
    assert second is not None and second > first


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES), instants,
       st.integers(min_value=1, max_value=72))  # fmt: skip
def test_fires_between_agrees_with_next_fire(expr: str, tz: str, start: datetime, hours: int) -> None:
    schedule = parse_schedule(expr, tz)
    end = start + timedelta(hours=hours)
    listed = list(schedule.fires_between(start, end))
    stepped: list[datetime] = []
    current = schedule.next_fire(start)
    while current is not None and current <= end:
        stepped.append(current)
        current = schedule.next_fire(current)
    assert listed == stepped
    assert all(start < t <= end for t in listed)
