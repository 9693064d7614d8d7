"""The pure planner: heap order, windows from slots, jitter determinism, updates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentcron.beat.planner import Planner
from agentcron.emission.envelope import emission_for
from agentcron.emission.jitter import jitter_offset
from agentcron.jobs import Job, JobSpec, compile_job
from agentcron.messages import ASYNC_TASK, SYNC_TASK

T0 = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)


def sync_agent(ctx: object) -> str:
    return "ok"


async def async_agent(ctx: object) -> str:
    return "ok"


def spec(name: str, schedule: str = "1m", **kw: object) -> JobSpec:
    return compile_job(Job(name, agent=kw.pop("agent", sync_agent), schedule=schedule, **kw))  # type: ignore[arg-type]


def test_due_pops_in_slot_order_and_replans_next_slot() -> None:
    planner = Planner()
    planner.add(spec("every2m", "2m"), T0)
    planner.add(spec("every1m"), T0)
    assert planner.next_due() == T0 + timedelta(minutes=1)
    assert planner.due(T0 + timedelta(seconds=59)) == []
    first = planner.due(T0 + timedelta(minutes=1))
    assert [e.window.job for e in first] == ["every1m"]
    both = planner.due(T0 + timedelta(minutes=2))
    assert sorted(e.window.job for e in both) == ["every1m", "every2m"]
    assert planner.next_due() == T0 + timedelta(minutes=3)


def test_catching_up_late_pops_every_due_slot_once() -> None:
    planner = Planner()
    planner.add(spec("a"), T0)
    out = planner.due(T0 + timedelta(minutes=3, seconds=5))
    assert [e.window.slot for e in out] == [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
    assert planner.due(T0 + timedelta(minutes=3, seconds=30)) == []


def test_window_and_key_come_from_the_slot_not_the_clock() -> None:
    daily = spec("daily", "0 23 * * *", window="day", tz="America/New_York")
    emission = emission_for(daily, datetime(2026, 3, 18, 3, 0, tzinfo=UTC))
    # 23:00 New York on 2026-03-17 is 03:00Z on the 18th; the window is the local day.
    assert emission.window.window_start == datetime(2026, 3, 17, 4, 0, tzinfo=UTC)
    assert emission.window.window_key == "daily@2026-03-17T04:00:00Z"
    message = emission.message()
    assert message.slot == datetime(2026, 3, 18, 3, 0, tzinfo=UTC)
    assert message.trigger == "schedule" and message.attempt == 1


def test_routes_by_agent_kind() -> None:
    assert emission_for(spec("s"), T0).task == SYNC_TASK
    assert emission_for(spec("s"), T0).queue == "agentcron.sync"
    asynchronous = emission_for(spec("a", agent=async_agent), T0)
    assert (asynchronous.task, asynchronous.queue) == (ASYNC_TASK, "agentcron.async")


def test_jitter_is_deterministic_per_window_and_bounded() -> None:
    limit = timedelta(seconds=30)
    offsets = {jitter_offset(f"job@2026-03-17T06:{m:02d}:00Z", limit) for m in range(60)}
    assert all(timedelta(0) <= o < limit for o in offsets)
    assert len(offsets) > 30  # spread, not constant
    assert jitter_offset("job@2026-03-17T06:00:00Z", limit) == jitter_offset(
        "job@2026-03-17T06:00:00Z", limit
    )
    assert jitter_offset("x@2026-03-17T06:00:00Z", timedelta(0)) == timedelta(0)


def test_two_planners_agree_on_jittered_due_times() -> None:
    a, b = Planner(), Planner()
    for planner in (a, b):
        planner.add(spec("j", jitter=20), T0)
    due_a, due_b = a.next_due(), b.next_due()
    assert due_a == due_b
    slot = T0 + timedelta(minutes=1)
    assert due_a is not None and slot <= due_a < slot + timedelta(seconds=20)
    assert a.due(T0 + timedelta(minutes=1)) == [] or due_a == T0 + timedelta(minutes=1)
    emitted = a.due(due_a)
    assert emitted[0].window.slot == T0 + timedelta(minutes=1)  # jitter moves the emission only
    assert emitted[0].due_at == due_a


def test_remove_and_replace_drop_stale_heap_entries() -> None:
    planner = Planner()
    planner.add(spec("a"), T0)
    planner.add(spec("b"), T0)
    assert planner.remove("a") and not planner.remove("a")
    planner.add(spec("b", "5m"), T0)  # replaced: every 5 minutes now
    out = planner.due(T0 + timedelta(minutes=4))
    assert out == []
    assert [e.window.job for e in planner.due(T0 + timedelta(minutes=5))] == ["b"]
    assert planner.names() == ["b"] and len(planner) == 1


def test_one_shot_schedule_leaves_the_heap_after_firing() -> None:
    planner = Planner()
    planner.add(spec("once", "at:2026-03-17T06:00:30Z"), T0)
    assert len(planner.due(T0 + timedelta(minutes=1))) == 1
    assert planner.next_due() is None


def test_due_respects_limit_and_keeps_the_rest() -> None:
    planner = Planner()
    for i in range(10):
        planner.add(spec(f"j{i}"), T0)
    first = planner.due(T0 + timedelta(minutes=1), limit=4)
    rest = planner.due(T0 + timedelta(minutes=1))
    assert len(first) == 4 and len(rest) == 6
    assert {e.window.job for e in first + rest} == {f"j{i}" for i in range(10)}


def test_the_fast_path_spells_the_window_key_as_window_key_does() -> None:
    from agentcron.windows import window_key, window_start

    planner = Planner()
    for name, schedule, window in (("fast", "1m", "slot"), ("hourly_window", "1m", "hour")):
        planner.add(spec(name, schedule, window=window), T0)
    for emission in planner.due(T0 + timedelta(minutes=3)):
        w = emission.window
        job = emission.window.job
        expected = window_key(job, window_start(w.slot, "slot" if job == "fast" else "hour", "UTC"))
        assert w.window_key == expected
