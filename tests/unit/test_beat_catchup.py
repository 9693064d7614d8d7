"""Catch-up after beat downtime: catchup_window and coalesce latest / all / none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentcron.beat.catchup import SCHEDULER_DOWN, plan_catchup
from agentcron.schedules import parse_schedule

T0 = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)
MINUTELY = parse_schedule("1m")  # the same slots as "* * * * *"


def minutes(*ms: int) -> list[datetime]:
    return [T0 + timedelta(minutes=m) for m in ms]


def test_new_job_or_no_downtime_has_nothing_to_catch_up() -> None:
    assert plan_catchup(MINUTELY, None, T0, timedelta(minutes=5), "all").emit == []
    nothing = plan_catchup(MINUTELY, T0, T0 + timedelta(seconds=59), timedelta(minutes=5), "all")
    assert nothing.emit == [] and nothing.missed == []


def test_all_emits_every_slot_inside_the_window_and_misses_older() -> None:
    now = T0 + timedelta(minutes=10, seconds=10)
    plan = plan_catchup(MINUTELY, T0, now, timedelta(minutes=3), "all")
    assert plan.emit == minutes(8, 9, 10)
    assert [s for s, _ in plan.missed] == minutes(1, 2, 3, 4, 5, 6, 7)
    assert all(reason == SCHEDULER_DOWN for _, reason in plan.missed)


def test_latest_emits_only_the_newest_and_coalesces_the_rest() -> None:
    now = T0 + timedelta(minutes=10, seconds=10)
    plan = plan_catchup(MINUTELY, T0, now, timedelta(minutes=3), "latest")
    assert plan.emit == minutes(10)
    missed = dict(plan.missed)
    assert missed[minutes(7)[0]] == SCHEDULER_DOWN
    assert "coalesced" in missed[minutes(9)[0]] and SCHEDULER_DOWN in missed[minutes(9)[0]]
    assert sorted(missed) == minutes(1, 2, 3, 4, 5, 6, 7, 8, 9)


def test_none_emits_nothing_and_records_everything_missed() -> None:
    now = T0 + timedelta(minutes=4)
    plan = plan_catchup(MINUTELY, T0, now, timedelta(minutes=3), "none")
    assert plan.emit == []
    assert [s for s, _ in plan.missed] == minutes(1, 2, 3, 4)
    assert all(r.startswith(SCHEDULER_DOWN) for _, r in plan.missed)


def test_default_window_of_one_period_catches_up_the_last_slot() -> None:
    hourly = parse_schedule("0 * * * *")
    now = T0 + timedelta(hours=3, minutes=20)
    plan = plan_catchup(hourly, T0, now, timedelta(hours=1), "latest")
    assert plan.emit == [T0 + timedelta(hours=3)]
    assert [s for s, _ in plan.missed] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]


def test_long_downtime_of_a_per_second_job_is_bounded() -> None:
    every_second = parse_schedule("*/1s")
    now = T0 + timedelta(days=1)
    plan = plan_catchup(every_second, T0, now, timedelta(seconds=5), "latest", max_missed=100)
    assert plan.emit == [now]
    assert len(plan.missed) == 100 + 5 - 1
    assert plan.truncated > 80_000
