"""AsyncAgentScheduler: windows from the schedule, retries, callbacks, cancellation, stats."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from agentcron.backoff import backoff_delay
from agentcron.clock import SYSTEM_CLOCK, FrozenClock
from agentcron.context import RunCancelled, RunContext
from agentcron.errors import ConfigError
from agentcron.inprocess import AsyncAgentScheduler, SchedulerOptions


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class Recorder:
    """An async agent that records its contexts.

    Call number ``limit`` parks until ``release`` is set; every later call blocks until
    cancelled. With a FrozenClock the scheduler fast-forwards through slots, so this keeps the
    number of runs exact.
    """

    def __init__(self, limit: int = 3, fail_first: int = 0) -> None:
        self.contexts: list[RunContext] = []
        self.limit = limit
        self.fail_first = fail_first
        self.parked = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, ctx: RunContext) -> str:
        self.contexts.append(ctx)
        calls = len(self.contexts)
        if calls <= self.fail_first:
            raise RuntimeError(f"boom {calls}")
        if calls == self.limit:
            self.parked.set()
            await self.release.wait()
        elif calls > self.limit:
            await asyncio.Event().wait()
        return f"done {ctx.window_key}"


async def until(predicate: Any, seconds: float = 5.0) -> None:
    """Poll ``predicate()`` with a deadline (agents in threads need a moment of real time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.001)


async def test_slots_come_from_the_schedule_and_key_each_window() -> None:
    clock = FrozenClock("2026-03-17T06:00:05Z")
    agent = Recorder(limit=3)
    scheduler = AsyncAgentScheduler(agent, "t", clock=clock, name="briefing")
    assert await scheduler.start("*/10s") is True
    await asyncio.wait_for(agent.parked.wait(), 5)
    agent.release.set()
    await scheduler.stop(timeout=5)
    keys = [ctx.window_key for ctx in agent.contexts[:3]]
    assert keys == ["briefing@2026-03-17T06:00:10Z", "briefing@2026-03-17T06:00:20Z",
                    "briefing@2026-03-17T06:00:30Z"]
    assert [ctx.slot for ctx in agent.contexts[:3]] == [
        utc("2026-03-17T06:00:10Z"), utc("2026-03-17T06:00:20Z"), utc("2026-03-17T06:00:30Z")]
    assert clock.slept[:3] == [5.0, 10.0, 10.0]
    assert all(ctx.trigger == "schedule" and ctx.attempt == 1 for ctx in agent.contexts)


async def test_window_granularity_and_timezone_shape_the_key() -> None:
    clock = FrozenClock("2026-03-17T12:00:00Z")
    agent = Recorder(limit=1)
    options = SchedulerOptions(tz="America/New_York", window="day")
    scheduler = AsyncAgentScheduler(agent, "t", clock=clock, name="daily", options=options)
    await scheduler.start("0 9 * * *")
    await asyncio.wait_for(agent.parked.wait(), 5)
    agent.release.set()
    await scheduler.stop()
    ctx = agent.contexts[0]
    assert ctx.slot == utc("2026-03-17T13:00:00Z")
    assert ctx.window_key == "daily@2026-03-17T04:00:00Z"


async def test_run_immediately_runs_the_open_window_first() -> None:
    clock = FrozenClock("2026-03-17T06:00:05Z")
    agent = Recorder(limit=2)
    scheduler = AsyncAgentScheduler(agent, "t", clock=clock, name="now")
    await scheduler.start("*/10s", run_immediately=True)
    await asyncio.wait_for(agent.parked.wait(), 5)
    agent.release.set()
    await scheduler.stop()
    first, second = agent.contexts[:2]
    assert (first.window_key, first.trigger) == ("now@2026-03-17T06:00:00Z", "manual")
    assert (second.window_key, second.trigger) == ("now@2026-03-17T06:00:10Z", "schedule")


async def test_retries_sleep_the_exact_seeded_backoff_delays() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    agent = Recorder(limit=3, fail_first=2)
    successes: list[Any] = []
    options = SchedulerOptions(backoff_base=2.0, backoff_cap=60.0)
    scheduler = AsyncAgentScheduler(agent, "t", on_success=successes.append, clock=clock,
                                    name="retry", rng=random.Random(42), options=options)
    await scheduler.start("1m", max_retries=3)
    await asyncio.wait_for(agent.parked.wait(), 5)
    agent.release.set()
    await until(lambda: successes)
    stats = await scheduler.stop()
    expected = random.Random(42)
    delays = [backoff_delay(1, 2.0, 60.0, expected), backoff_delay(2, 2.0, 60.0, expected)]
    assert clock.slept[:3] == [60.0, *delays]
    assert [ctx.attempt for ctx in agent.contexts[:3]] == [1, 2, 3]
    assert {ctx.window_key for ctx in agent.contexts[:3]} == {"retry@2026-03-17T06:01:00Z"}
    assert successes == ["done retry@2026-03-17T06:01:00Z"]
    assert stats["successful_executions"] == 1 and stats["failed_executions"] == 0


async def test_all_attempts_failing_calls_on_failure_once_with_the_error() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    failures: list[BaseException] = []
    calls: list[int] = []
    done = asyncio.Event()

    async def failing(ctx: RunContext) -> None:
        calls.append(ctx.attempt)
        raise ValueError(f"bad attempt {ctx.attempt}")

    async def on_failure(error: BaseException) -> None:
        await asyncio.sleep(0)
        failures.append(error)
        done.set()

    scheduler = AsyncAgentScheduler(failing, "t", on_failure=on_failure, clock=clock,
                                    name="fails", rng=random.Random(1))
    await scheduler.start("1h", max_retries=2)
    await asyncio.wait_for(done.wait(), 5)
    stats = await scheduler.stop()
    assert calls[:2] == [1, 2]
    assert isinstance(failures[0], ValueError) and str(failures[0]) == "bad attempt 2"
    assert stats["failed_executions"] >= 1
    assert stats["last_error"].startswith("ValueError: bad attempt")


async def test_sync_and_async_callbacks_are_both_called() -> None:
    seen: list[str] = []

    async def async_success(result: str) -> None:
        await asyncio.sleep(0)
        seen.append(f"async {result}")

    def sync_agent(ctx: RunContext) -> str:
        return ctx.window_key

    for callback in (lambda result: seen.append(f"sync {result}"), async_success):
        clock = FrozenClock("2026-03-17T06:00:00Z")
        scheduler = AsyncAgentScheduler(sync_agent, "t", on_success=callback, clock=clock,
                                        name="cb")
        await scheduler.start("at:2026-03-17T07:00:00Z")
        await until(lambda s=scheduler: not s.is_running)
        await scheduler.stop()
    assert seen == ["sync cb@2026-03-17T07:00:00Z", "async cb@2026-03-17T07:00:00Z"]


async def test_sync_agents_run_in_the_thread_pool_and_objects_get_the_task() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    threads: list[str] = []

    class Agent:
        def run(self, task: str) -> str:
            threads.append(threading.current_thread().name)
            return task.upper()

    results: list[str] = []
    scheduler = AsyncAgentScheduler(Agent(), "summarise", on_success=results.append,
                                    clock=clock)
    assert scheduler.name == "Agent"
    await scheduler.start("at:2026-03-17T06:30:00Z")
    await until(lambda: not scheduler.is_running)
    await scheduler.stop()
    assert results == ["SUMMARISE"]
    assert threads[0].startswith("agentcron-agent")


async def test_stop_cancels_a_run_that_outlives_the_timeout() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    started = asyncio.Event()
    outcome: list[str] = []

    async def forever(ctx: RunContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    scheduler = AsyncAgentScheduler(forever, "t", clock=clock, name="stuck")
    await scheduler.start("1m")
    await asyncio.wait_for(started.wait(), 5)
    stats = await scheduler.stop(timeout=30)
    assert outcome == ["cancelled"]
    assert clock.slept[-1] == 30  # the stop timeout was waited on the injected clock
    assert stats["cancelled_executions"] == 1 and stats["is_running"] is False
    assert stats["total_executions"] == 1 and stats["success_rate"] == 0.0


async def test_stop_waits_for_a_run_that_finishes_within_the_timeout() -> None:
    started = asyncio.Event()
    finish = asyncio.Event()
    done: list[str] = []

    async def agent(ctx: RunContext) -> str:
        started.set()
        await finish.wait()
        return "ok"

    scheduler = AsyncAgentScheduler(agent, "t", on_success=done.append, clock=SYSTEM_CLOCK,
                                    name="graceful")
    await scheduler.start("1h", run_immediately=True)
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(scheduler.stop(timeout=30))
    await asyncio.sleep(0)
    assert not stopping.done()
    finish.set()
    stats = await asyncio.wait_for(stopping, 5)
    assert done == ["ok"] and stats["successful_executions"] == 1
    assert stats["cancelled_executions"] == 0


async def test_cooperative_cancel_reaches_a_sync_agent_after_the_timeout() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    started = threading.Event()
    saw_cancel = threading.Event()

    def polite(ctx: RunContext) -> None:
        started.set()
        while not ctx.cancel_requested:
            threading.Event().wait(0.005)
        saw_cancel.set()
        ctx.raise_if_cancelled()

    scheduler = AsyncAgentScheduler(polite, "t", clock=clock, name="polite")
    await scheduler.start("1m")
    await asyncio.to_thread(started.wait, 5)
    stats = await scheduler.stop(timeout=1)
    assert await asyncio.to_thread(saw_cancel.wait, 5)
    assert stats["cancelled_executions"] == 1


async def test_agent_raising_run_cancelled_is_not_retried() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    attempts: list[int] = []

    def gives_up(ctx: RunContext) -> None:
        attempts.append(ctx.attempt)
        raise RunCancelled("no")

    scheduler = AsyncAgentScheduler(gives_up, "t", clock=clock, name="giveup")
    await scheduler.start("at:2026-03-17T06:00:30Z", max_retries=3)
    await until(lambda: not scheduler.is_running)
    stats = await scheduler.stop()
    assert attempts == [1] and stats["cancelled_executions"] == 1


async def test_overdue_slots_are_coalesced_into_the_latest() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    agent = Recorder(limit=2)
    original = agent.__call__

    async def slow(ctx: RunContext) -> str:
        if not agent.contexts:
            clock.advance(35)  # the first run overruns three more slots
        return await original(ctx)

    scheduler = AsyncAgentScheduler(slow, "t", clock=clock, name="slow")
    await scheduler.start("*/10s")
    await asyncio.wait_for(agent.parked.wait(), 5)
    agent.release.set()
    stats = await scheduler.stop()
    assert [c.window_key for c in agent.contexts[:2]] == [
        "slow@2026-03-17T06:00:10Z", "slow@2026-03-17T06:00:40Z"]
    assert stats["missed_windows"] == 2


async def test_stats_report_runtime_and_next_run() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    agent = Recorder(limit=1)
    scheduler = AsyncAgentScheduler(agent, "t", clock=clock, name="stats")
    await scheduler.start("1m")
    await asyncio.wait_for(agent.parked.wait(), 5)
    running = scheduler.get_stats()
    assert running["is_running"] is True
    assert running["next_run"] == utc("2026-03-17T06:01:00Z")
    assert running["last_run"] == utc("2026-03-17T06:01:00Z")
    assert running["runtime_seconds"] == 60.0
    agent.release.set()
    await until(lambda: scheduler.get_stats()["successful_executions"] == 1)
    stats = await scheduler.stop()  # the second window's run never ends: cancelled
    assert stats["is_running"] is False and stats["next_run"] is None
    assert (stats["total_executions"], stats["cancelled_executions"]) == (2, 1)
    assert stats["success_rate"] == 0.5 and stats["last_window_key"] == "stats@2026-03-17T06:02:00Z"


async def test_start_twice_returns_false_and_bad_input_raises_config_error() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    agent = Recorder(limit=1)
    scheduler = AsyncAgentScheduler(agent, "t", clock=clock, name="twice")
    with pytest.raises(ConfigError, match="schedule"):
        await scheduler.start("every banana")
    with pytest.raises(ConfigError, match="max_retries"):
        await scheduler.start("1m", max_retries=0)
    assert await scheduler.start("1m") is True
    assert await scheduler.start("1m") is False
    agent.release.set()
    await scheduler.stop()
    with pytest.raises(ConfigError, match="name"):
        AsyncAgentScheduler(agent, "t", name="bad name@x")
    with pytest.raises(ConfigError, match="window"):
        AsyncAgentScheduler(agent, "t", options=SchedulerOptions(window="fortnight"))
    with pytest.raises(ConfigError, match="agent"):
        AsyncAgentScheduler(42, "t")


async def test_stop_before_start_returns_stats() -> None:
    scheduler = AsyncAgentScheduler(Recorder(), "t", name="idle")
    stats = await scheduler.stop()
    assert stats["is_running"] is False and stats["total_executions"] == 0


async def test_reports_without_a_ledger_are_not_kept_and_say_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FrozenClock("2026-03-17T06:00:05Z")
    reported = asyncio.Event()

    async def agent(ctx: RunContext) -> None:
        ctx.report("t", "b")
        reported.set()
        if ctx.slot.second > 10:  # the second window parks: one success to look at
            await asyncio.Event().wait()

    scheduler = AsyncAgentScheduler(agent, "t", clock=clock, name="plain_reports")
    await scheduler.start("*/10s")
    await asyncio.wait_for(reported.wait(), 5)
    await until(lambda: "not kept: ctx.report needs a ledger" in caplog.text)
    await scheduler.stop(timeout=1)


async def test_env_config_values_are_read_right_before_the_agent_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    failures: list[BaseException] = []

    def agent(ctx: RunContext) -> str:
        seen.append(dict(ctx.config))
        return "ok"

    config = {"api_key": "env:H12_PLAIN_KEY", "nested": {"url": "env:H12_PLAIN_URL"}, "n": 3}
    monkeypatch.setenv("H12_PLAIN_KEY", "sk-plain-123")
    monkeypatch.setenv("H12_PLAIN_URL", "https://example.com")
    scheduler = AsyncAgentScheduler(agent, "t", config=config, clock=FrozenClock(
        "2026-03-17T06:00:00Z"), name="envcfg")  # fmt: skip
    await scheduler.start("at:2026-03-17T07:00:00Z")
    await until(lambda: not scheduler.is_running)
    await scheduler.stop()
    assert seen == [{"api_key": "sk-plain-123", "nested": {"url": "https://example.com"}, "n": 3}]
    monkeypatch.delenv("H12_PLAIN_KEY")
    scheduler = AsyncAgentScheduler(agent, "t", config=config, on_failure=failures.append,
                                    clock=FrozenClock("2026-03-17T06:00:00Z"), name="envcfg")  # fmt: skip
    await scheduler.start("at:2026-03-17T07:00:00Z")
    await until(lambda: failures)
    stats = await scheduler.stop()
    assert len(seen) == 1  # the agent never ran without its variable
    assert isinstance(failures[0], ConfigError) and "H12_PLAIN_KEY is not set" in str(failures[0])
    assert "H12_PLAIN_KEY" in stats["last_error"]
