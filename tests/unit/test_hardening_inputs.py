"""Issue 13 items 2-4: full-match validation, overflowing input, counted backfills."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcron.cli import main
from agentcron.cli.failures import describe
from agentcron.errors import ConfigError
from agentcron.guard.overlap import policy_for
from agentcron.instants import format_instant, parse_instant
from agentcron.job_fields import to_timedelta
from agentcron.jobs import Job, compile_job
from agentcron.schedules import parse_schedule
from agentcron.watch.backfill import BackfillError, count_windows, iter_windows, plan_windows
from agentcron.windows import is_job_name, parse_window_key, window_start

T0 = datetime(2016, 1, 1, tzinfo=UTC)


def agent(ctx: Any) -> None:
    return None


def spec_of(schedule: str, window: str = "slot", tz: str = "UTC", **kw: Any) -> Any:
    return compile_job(Job("j", agent=agent, schedule=schedule, window=window, tz=tz, **kw))


@pytest.mark.parametrize("name", ["job\n", "job\r\n", "\njob", "jo b", "job\u0661", "jöb", "a@b"])
def test_names_are_matched_whole_and_ascii(name: str) -> None:
    assert not is_job_name(name)
    with pytest.raises(ConfigError, match="name"):
        compile_job(Job(name, agent=agent, schedule="@daily"))


@pytest.mark.parametrize("queue", ["q\n", 'q"', "q\\", "", " q", "q\x00"])
def test_queues_are_validated(queue: str) -> None:
    with pytest.raises(ConfigError, match="queue"):
        compile_job(Job("j", agent=agent, schedule="@daily", queue=queue))


def test_window_keys_are_matched_whole() -> None:
    with pytest.raises(ValueError, match="malformed"):
        parse_window_key("j@2026-03-17T06:00:00Z\n")
    with pytest.raises(ValueError, match="malformed"):
        parse_window_key("j@2026-03-17T06:00:0\u0661Z")


@pytest.mark.parametrize("expr", ["99999999999999999999d", "9999999999d", "3000000d", "3651d",
                                  "*/99999999999999999999", "every 9999999999999 weeks", "1" * 5000])
def test_overflowing_intervals_are_refused(expr: str) -> None:
    with pytest.raises(ConfigError, match="at most 3650 days"):
        parse_schedule(expr)


@pytest.mark.parametrize("value", [1e20, 10**30, "99999999999999999999d", timedelta(days=4000)])
def test_overflowing_durations_are_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match="at most 3650 days"):
        to_timedelta(value, "timeout")
    with pytest.raises(ConfigError, match="timeout"):
        compile_job(Job("j", agent=agent, schedule="@daily", timeout=value))


def test_absurd_max_retries_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_retries"):
        compile_job(Job("j", agent=agent, schedule="@daily", max_retries=10**30))


def test_instants_at_the_ends_of_the_calendar() -> None:
    end = parse_instant("9999-12-31T23:59:00Z")
    assert parse_schedule("0 * * * *").next_fire(end) is None
    assert parse_schedule("0 * * * *", "Pacific/Kiritimati").next_fire(end) is None
    assert parse_schedule("3650d").next_fire(end) is None
    assert list(parse_schedule("*/10s").fires_between(end, end + timedelta(seconds=30))) == [
        parse_instant("9999-12-31T23:59:10Z"), parse_instant("9999-12-31T23:59:20Z"),
        parse_instant("9999-12-31T23:59:30Z")]  # fmt: skip
    for text in ("0001-01-01", "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"):
        with pytest.raises(ConfigError, match="outside the supported range"):
            parse_instant(text)
    assert format_instant(parse_instant("0005-06-07T08:09:10Z")) == "0005-06-07T08:09:10Z"
    with pytest.raises(ConfigError, match="outside the calendar"):
        window_start(end, "day", "Pacific/Kiritimati")


@pytest.mark.parametrize("args", [
    ["next", "99999999999999999999d"], ["next", "9999999999d"], ["next", "3000000d"],
    ["next", "@hourly", "--after", "0001-01-01"], ["next", "@hourly", "-n", "10001"],
    ["next", "@hourly", "--after", "10000-01-01"],
    ["schedules", "add", "x", "--agent", "tests.unit.test_hardening_inputs:agent", "--schedule", "5m",
     "--timeout", "99999999999999999999"],
    ["schedules", "add", "x", "--agent", "tests.unit.test_hardening_inputs:agent", "--schedule", "5m",
     "--max-retries", "99999999999999999999"],
    ["schedules", "add", "x", "--agent", "tests.unit.test_hardening_inputs:agent", "--schedule", "5m",
     "--timeout", "\u00b2"],
    ["schedules", "add", "x", "--agent", "tests.unit.test_hardening_inputs:agent", "--schedule", "5m",
     "--timeout", "inf"],
    ["schedules", "add", "x", "--agent", "tests.unit.test_hardening_inputs:agent", "--schedule", "5m",
     "--queue", "q\n"],
])  # fmt: skip
def test_cli_refuses_overflowing_input_in_one_line(args: list[str], tmp_path: Any) -> None:
    result = CliRunner().invoke(main, args, env={"AGENTCRON_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_next_at_the_end_of_the_calendar_says_so() -> None:
    result = CliRunner().invoke(main, ["next", "@hourly", "--after", "9999-12-31T23:59:00Z"])
    assert result.exit_code == 0 and "no fire time after 9999-12-31T23:59:00Z" in result.output


def test_a_huge_backfill_is_refused_at_once_naming_its_count() -> None:
    for schedule, window, limit, count in (("*/1s", "day", 1000, "3,6"), ("*/1s", "slot", 100_000, "315,"),
                                           ("* * * * *", "slot", 100_000, "5,2"),
                                           ("* * * * *", "hour", 1000, "87,")):  # fmt: skip
        spec = spec_of(schedule, window)
        started = time.monotonic()
        with pytest.raises(BackfillError, match=f"holds (about )?{count}[0-9,]* windows, more than"):
            plan_windows(spec, T0, T0 + timedelta(days=3653), limit)
        assert time.monotonic() - started < 5.0  # minutes before; under a second when idle


def test_backfill_limit_is_capped() -> None:
    with pytest.raises(BackfillError, match="over the maximum"):
        plan_windows(spec_of("@daily"), T0, T0 + timedelta(days=1), 10**9)
    result = CliRunner().invoke(main, ["backfill", "j", "--from", "2026-01-01", "--to", "2026-01-02",
                                       "--limit", "1000000000"])  # fmt: skip
    assert result.exit_code == 2 and "1<=x<=100000" in result.output


def test_interval_counts_are_arithmetic() -> None:
    assert count_windows(spec_of("*/1s"), T0, T0 + timedelta(days=3653), 10) == (315_619_201, True)
    assert count_windows(spec_of("15m"), T0, T0 + timedelta(hours=1), 10) == (5, True)
    start_spec = spec_of("1h", start="2016-01-01T00:30:00Z")
    assert count_windows(start_spec, T0, T0 + timedelta(hours=3), 10) == (3, True)


ZONES = ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia", "Europe/Berlin"]


@settings(max_examples=60, deadline=None)
@given(schedule=st.sampled_from(["*/7m", "*/45m", "2h", "0 * * * *", "30 1 * * *", "*/20 * * * sun",
                                 "0 0 1,15 * *"]),
       window=st.sampled_from(["slot", "hour", "day", "week", "month"]), tz=st.sampled_from(ZONES),
       start=st.datetimes(datetime(2011, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),
       days=st.integers(0, 40))  # fmt: skip
def test_walking_windows_equals_visiting_every_slot(
    schedule: str, window: str, tz: str, start: datetime, days: int
) -> None:
    spec = spec_of(schedule, window, tz)
    end = start + timedelta(days=days)
    naive: dict[datetime, datetime] = {}
    for slot in spec.schedule.fires_between(start - timedelta(microseconds=1), end):
        naive.setdefault(window_start(slot, window, tz), slot)
    walked = list(iter_windows(spec, start, end))
    assert walked == sorted(((s, w) for w, s in naive.items()), key=lambda p: p[0])
    assert count_windows(spec, start, end, 10**6) == (len(naive), True)


def test_backfill_windows_queue_whatever_the_policy_but_allow() -> None:
    for policy in ("skip", "buffer_one", "buffer_all", "cancel_other"):
        assert policy_for(policy, "backfill") == "buffer_all"
        assert policy_for(policy, "schedule") == policy
    assert policy_for("allow", "backfill") == "allow"


def test_failures_are_described_in_one_line() -> None:
    import redis
    from sqlalchemy.exc import OperationalError

    message, code = describe(OperationalError("SELECT 1", {}, Exception("connection\nrefused")))
    assert code == 1 and "\n" not in message and message.startswith("error: database unavailable")
    message, code = describe(redis.ConnectionError("Error 111 connecting to redis://u:secret@h:1"))
    assert code == 1 and "secret" not in message and "Redis" in message
    assert describe(ConfigError([]))[1] == 2
    assert describe(OverflowError("date value out of range"))[1] == 2
    assert describe(KeyError("x"))[0].startswith("error: unexpected KeyError")


def test_next_fire_inside_a_repeated_hour_is_later_than_after() -> None:
    """Found by Hypothesis: from 02:00 CET (the second 02:00 of 2024-10-27 in Berlin) the next
    02:30 is the next day's, not the first 02:30 of that day (00:30Z, before ``after``)."""
    schedule = parse_schedule("30 2 * * *", "Europe/Berlin")
    after = datetime(2024, 10, 27, 1, 0, tzinfo=UTC)
    assert schedule.next_fire(after) == datetime(2024, 10, 28, 1, 30, tzinfo=UTC)
    assert schedule.next_fire(after - timedelta(hours=1)) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
