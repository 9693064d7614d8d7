"""AgentScheduler: the thread-based twin (blocking start/stop, async callbacks awaited)."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest

from agentcron.backoff import backoff_delay
from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.errors import ConfigError
from agentcron.inprocess import AgentScheduler, SchedulerOptions
from tests.services import wait_for


class Gate:
    """A sync agent: records contexts; call ``limit`` waits for ``release``, later ones block
    until cancelled (so a FrozenClock's fast-forward yields an exact number of runs)."""

    def __init__(self, limit: int, fail_first: int = 0) -> None:
        self.contexts: list[RunContext] = []
        self.limit = limit
        self.fail_first = fail_first
        self.parked = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self, ctx: RunContext) -> str:
        self.contexts.append(ctx)
        self.threads.append(threading.current_thread().name)
        calls = len(self.contexts)
        if calls <= self.fail_first:
            raise RuntimeError(f"boom {calls}")
        if calls == self.limit:
            self.parked.set()
            self.release.wait(10)
        elif calls > self.limit:
            while not ctx.cancel_requested:
                threading.Event().wait(0.005)
        return f"done {ctx.window_key}"


def test_sync_scheduler_runs_windows_from_the_schedule_on_a_pool_thread() -> None:
    clock = FrozenClock("2026-03-17T06:00:05Z")
    agent = Gate(limit=2)
    scheduler = AgentScheduler(agent, "t", clock=clock, name="sync")
    assert scheduler.start("*/10s") is True
    assert scheduler.is_running
    assert agent.parked.wait(5)
    agent.release.set()
    wait_for(lambda: scheduler.get_stats()["successful_executions"] == 2, 5)
    stats = scheduler.stop(timeout=1)
    assert [c.window_key for c in agent.contexts[:2]] == ["sync@2026-03-17T06:00:10Z",
                                                         "sync@2026-03-17T06:00:20Z"]
    assert clock.slept[:2] == [5.0, 10.0]
    assert agent.threads[0].startswith("agentcron-agent")
    assert stats["is_running"] is False and not scheduler.is_running
    assert stats["successful_executions"] == 2 and stats["cancelled_executions"] == 1


def test_sync_scheduler_awaits_async_callbacks_and_calls_sync_ones() -> None:
    events: list[str] = []

    async def on_success(result: str) -> None:
        await asyncio.sleep(0)  # only recorded if the coroutine is really awaited
        events.append(f"async success {result}")

    def on_failure(error: BaseException) -> None:
        events.append(f"sync failure {error}")

    def agent(ctx: RunContext) -> str:
        if ctx.window_key.endswith("07:00:00Z"):
            raise ValueError("second window fails")
        return ctx.window_key

    clock = FrozenClock("2026-03-17T05:59:00Z")
    scheduler = AgentScheduler(agent, "t", on_success=on_success, on_failure=on_failure,
                               clock=clock, name="cbs")
    scheduler.start("hourly", max_retries=1)
    wait_for(lambda: len(events) >= 2, 5)
    scheduler.stop(timeout=1)
    assert events[:2] == ["async success cbs@2026-03-17T06:00:00Z",
                          "sync failure second window fails"]


def test_async_agent_under_the_sync_scheduler_and_seeded_retries() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    attempts: list[int] = []
    done = threading.Event()

    async def flaky(ctx: RunContext) -> str:
        await asyncio.sleep(0)
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return "ok"

    options = SchedulerOptions(backoff_base=4.0, backoff_cap=10.0)
    scheduler = AgentScheduler(flaky, "t", on_success=lambda _r: done.set(), clock=clock,
                               name="flaky", rng=random.Random(3), options=options)
    scheduler.start("at:2026-03-17T06:00:30Z", max_retries=3)
    assert done.wait(5)
    wait_for(lambda: not scheduler.is_running, 5)
    stats = scheduler.stop()
    rng = random.Random(3)
    assert clock.slept == [30.0, backoff_delay(1, 4.0, 10.0, rng), backoff_delay(2, 4.0, 10.0, rng)]
    assert attempts == [1, 2, 3] and stats["successful_executions"] == 1


def test_sync_stop_cancels_a_run_past_the_timeout_and_restart_works() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    started = threading.Event()
    seen: list[Any] = []

    async def stuck(ctx: RunContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    scheduler = AgentScheduler(stuck, "t", clock=clock, name="stuck")
    scheduler.start("1m")
    assert started.wait(5)
    stats = scheduler.stop(timeout=2)
    assert seen == ["cancelled"] and stats["cancelled_executions"] == 1
    started.clear()
    assert scheduler.start("1m") is True  # a fresh thread and loop
    assert started.wait(5)
    assert scheduler.start("1m") is False
    stats = scheduler.stop(timeout=2)
    assert stats["cancelled_executions"] == 2


def test_sync_start_rejects_bad_input_in_the_caller() -> None:
    scheduler = AgentScheduler(lambda ctx: None, "t", name="bad")
    with pytest.raises(ConfigError, match="schedule"):
        scheduler.start("61 * * * *")
    with pytest.raises(ConfigError, match="max_retries"):
        scheduler.start("1m", max_retries=-1)
    assert scheduler.stop()["is_running"] is False


def test_sync_scheduler_as_a_context_manager_stops_on_exit() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    agent = Gate(limit=1)
    with AgentScheduler(agent, "t", clock=clock, name="ctxmgr") as scheduler:
        scheduler.start("1m")
        assert agent.parked.wait(5)
        agent.release.set()
        wait_for(lambda: scheduler.get_stats()["successful_executions"] == 1, 5)
    assert not scheduler.is_running
