"""Event-loop safety: construct outside a loop, or in one loop, and start in another."""

from __future__ import annotations

import asyncio

from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.inprocess import AsyncAgentScheduler


def make(runs: list[str]) -> AsyncAgentScheduler:
    async def agent(ctx: RunContext) -> None:
        runs.append(ctx.window_key)
        await asyncio.Event().wait()  # one run per test, stopped by cancellation

    clock = FrozenClock("2026-03-17T06:00:00Z")
    return AsyncAgentScheduler(agent, "t", clock=clock, name="loops")


async def run_one_window(scheduler: AsyncAgentScheduler, runs: list[str]) -> dict[str, object]:
    count = len(runs)
    assert await scheduler.start("1m", run_immediately=True)
    for _ in range(1000):
        if len(runs) > count:
            break
        await asyncio.sleep(0)
    assert len(runs) == count + 1
    return await scheduler.stop(timeout=1)


def test_constructed_outside_any_loop_started_in_one() -> None:
    runs: list[str] = []
    scheduler = make(runs)  # no running loop here
    stats = asyncio.run(run_one_window(scheduler, runs))
    assert runs[0] == "loops@2026-03-17T06:00:00Z" and stats["cancelled_executions"] == 1


def test_constructed_in_one_loop_started_in_a_second_and_a_third() -> None:
    runs: list[str] = []

    async def build() -> AsyncAgentScheduler:
        scheduler = make(runs)
        await scheduler.stop()  # touches the primitives in this first loop
        return scheduler

    scheduler = asyncio.run(build())
    asyncio.run(run_one_window(scheduler, runs))
    stats = asyncio.run(run_one_window(scheduler, runs))  # and again in yet another loop
    assert stats["cancelled_executions"] == 2 and len(runs) == 2


def test_two_loops_in_two_threads_each_with_its_own_scheduler() -> None:
    import threading

    results: list[object] = []

    def worker() -> None:
        runs: list[str] = []
        results.append(asyncio.run(run_one_window(make(runs), runs)))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 2
