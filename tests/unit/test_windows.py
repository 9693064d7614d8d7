"""Windows: start of the slot's window in the job's timezone; keys and their strict parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcron.errors import ConfigError
from agentcron.instants import format_instant, parse_instant
from agentcron.windows import parse_window_key, window_key, window_start

TABLE = [
    ("2026-03-17T06:00:00Z", "slot", "UTC", "2026-03-17T06:00:00Z"),
    ("2026-03-17T06:42:10Z", "hour", "UTC", "2026-03-17T06:00:00Z"),
    ("2026-03-17T06:42:10Z", "hour", "Asia/Kolkata", "2026-03-17T06:30:00Z"),
    ("2026-03-17T23:59:00Z", "day", "UTC", "2026-03-17T00:00:00Z"),
    ("2026-03-18T00:01:00Z", "day", "UTC", "2026-03-18T00:00:00Z"),
    ("2026-03-17T03:00:00Z", "day", "America/New_York", "2026-03-16T04:00:00Z"),
    ("2026-03-19T12:00:00Z", "week", "UTC", "2026-03-16T00:00:00Z"),
    ("2026-03-16T00:00:00Z", "week", "UTC", "2026-03-16T00:00:00Z"),
    ("2026-03-29T12:00:00Z", "week", "Europe/Berlin", "2026-03-22T23:00:00Z"),
    ("2026-03-17T06:00:00Z", "month", "UTC", "2026-03-01T00:00:00Z"),
    ("2026-11-01T12:00:00Z", "month", "America/New_York", "2026-11-01T04:00:00Z"),
    # fall-back hour: 01:30 EDT and 01:30 EST are different local hours
    ("2026-11-01T05:30:00Z", "hour", "America/New_York", "2026-11-01T05:00:00Z"),
    ("2026-11-01T06:30:00Z", "hour", "America/New_York", "2026-11-01T06:00:00Z"),
    # the day of a spring-forward change begins at local midnight, before the gap
    ("2026-03-08T15:00:00Z", "day", "America/New_York", "2026-03-08T05:00:00Z"),
]  # fmt: skip


@pytest.mark.parametrize(("slot", "granularity", "tz", "expected"), TABLE)
def test_window_start(slot: str, granularity: str, tz: str, expected: str) -> None:
    assert format_instant(window_start(parse_instant(slot), granularity, tz)) == expected


def test_manual_and_scheduled_runs_share_a_widened_window() -> None:
    scheduled = window_start(parse_instant("2026-03-17T13:00:00Z"), "day", "America/New_York")
    manual = window_start(parse_instant("2026-03-17T20:17:43Z"), "day", "America/New_York")
    assert window_key("briefing", scheduled) == window_key("briefing", manual)


def test_unknown_granularity() -> None:
    with pytest.raises(ConfigError, match="fortnight"):
        window_start(parse_instant("2026-03-17T06:00:00Z"), "fortnight")


def test_window_key_format_and_round_trip() -> None:
    start = parse_instant("2026-03-17T06:00:00Z")
    key = window_key("daily_market_analysis", start)
    assert key == "daily_market_analysis@2026-03-17T06:00:00Z"
    assert parse_window_key(key) == ("daily_market_analysis", start)


@pytest.mark.parametrize(
    "key",
    ["", "job", "job@", "@2026-03-17T06:00:00Z", "job@2026-03-17 06:00:00Z",
     "job@2026-03-17T06:00:00", "job@2026-13-17T06:00:00Z", "job@2026-02-30T06:00:00Z",
     "jo b@2026-03-17T06:00:00Z", "a@b@2026-03-17T06:00:00Z", "job@2026-03-17T06:00:00+00:00"],
)  # fmt: skip
def test_parse_window_key_is_strict(key: str) -> None:
    with pytest.raises(ValueError):
        parse_window_key(key)


def test_window_key_rejects_bad_job_names() -> None:
    with pytest.raises(ConfigError):
        window_key("has space", parse_instant("2026-03-17T06:00:00Z"))


slots = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31),
                     timezones=st.just(UTC))  # fmt: skip
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,30}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(slots, st.sampled_from(["slot", "hour", "day", "week", "month"]),
       st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata",
                        "Australia/Lord_Howe", "America/Santiago"]), names)  # fmt: skip
def test_window_contains_its_slot_and_keys_round_trip(
    slot: datetime, granularity: str, tz: str, name: str
) -> None:
    slot = slot.replace(microsecond=0)
    start = window_start(slot, granularity, tz)
    assert start <= slot
    assert slot - start < timedelta(days=32)
    assert window_start(start, granularity, tz) == start
    assert parse_window_key(window_key(name, start)) == (name, start)
