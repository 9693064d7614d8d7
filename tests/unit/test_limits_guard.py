"""Limits in the guard (SQLite ledger, SQL limit store, frozen clock): held around the run,
re-queued after ``limit_wait``; ``ctx.limit`` inside an agent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.jobs import Declared, Job, compile_job
from agentcron.ledger.records import RunState
from agentcron.limits import Limit
from tests.unit.test_guard import World

ONE = Limit("one", concurrency=1, ttl=30)
RATE = Limit("rate", per_minute=2)
DECLARED = Declared(limits={"one": ONE, "rate": RATE})


def spec_of(agent: Any, **kw: Any) -> Any:
    return compile_job(Job(kw.pop("name", "job"), agent=agent, schedule="0 6 * * *", **kw),
                       declarations=DECLARED)


def test_a_run_holds_its_limits_and_is_requeued_when_they_stay_busy(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    world = World(tmp_path, clock)
    world.settings = world.settings.with_overrides(limit_wait=5.0)
    guard = world.guard()
    seen: list[list[str]] = []

    def agent(ctx: RunContext) -> str:
        seen.append(guard.limits.store.holders(ONE))
        return "ok"

    spec = spec_of(agent, limits=["one"])
    assert guard.limits.store.acquire_slot(ONE, "someone-else")
    outcome = guard.run_sync(spec, world.message(spec))
    assert outcome.state is None and outcome.requeue_after is not None
    assert 1.0 <= outcome.requeue_after <= 5.0 and "requeued" in outcome.detail
    assert world.ledger.get_by_key(world.message(spec).window_key) is None  # not claimed
    assert guard.limits.stats()["one"]["refused"] == 1
    guard.limits.store.release_slot(ONE, "someone-else")
    outcome = guard.run_sync(spec, world.message(spec))
    assert outcome.state is RunState.SUCCEEDED and len(seen) == 1
    assert seen[0][0].startswith("job@2026-03-17T06:00:00Z#")  # held during the run
    assert guard.limits.store.holders(ONE) == []  # and released after it


def test_ctx_limit_in_agents(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    world = World(tmp_path, clock)
    guard = world.guard()
    times: list[float] = []

    def sync_agent(ctx: RunContext) -> int:
        for _ in range(3):
            with ctx.limit("rate", tokens=10):
                times.append(clock.monotonic())
        return len(times)

    async def async_agent(ctx: RunContext) -> int:
        for _ in range(3):
            async with ctx.limit("rate"):
                times.append(clock.monotonic())
        return len(times)

    spec = spec_of(sync_agent)
    assert guard.run_sync(spec, world.message(spec)).state is RunState.SUCCEEDED
    assert times[1] - times[0] < 1 and 60 <= times[2] - times[0] <= 61  # 2 per minute
    times.clear()
    clock.advance(120)
    spec = spec_of(async_agent, name="async_job")
    outcome = asyncio.run(guard.run_async(spec, world.message(spec)))
    assert outcome.state is RunState.SUCCEEDED and 60 <= times[2] - times[0] <= 61

    def unknown(ctx: RunContext) -> None:
        with ctx.limit("nope"):
            pass

    spec = spec_of(unknown, name="bad", max_retries=1)
    outcome = guard.run_sync(spec, world.message(spec))
    assert outcome.state is RunState.FAILED and "no limit named 'nope'" in (outcome.error or "")


def test_an_unreachable_limit_store_requeues_and_a_bad_wait_is_rejected(tmp_path: Path) -> None:
    import pytest

    from agentcron.errors import ConfigError
    from agentcron.limits.run import open_limit_gate

    world = World(tmp_path, FrozenClock("2026-03-17T06:00:00Z"))
    guard = world.guard()

    def broken(*_: Any) -> bool:
        raise ConnectionError("store down")

    guard.limits.store.acquire_slot = broken  # type: ignore[method-assign,assignment]
    spec = spec_of(lambda ctx: "never", limits=["one"])
    outcome = guard.run_sync(spec, world.message(spec))
    assert outcome.state is None and outcome.requeue_after is not None
    with pytest.raises(ConfigError, match="AGENTCRON_LIMIT_WAIT"):
        open_limit_gate(world.settings.with_overrides(limit_wait=-1.0), world.ledger.engine,
                        world.clock)


def test_limits_from_the_environment_and_bad_declarations() -> None:
    import pytest

    from agentcron.errors import ConfigError
    from agentcron.limits import named_limits

    listed = named_limits([], '[{"name": "openai", "concurrency": 4, "per_minute": 60}]')
    keyed = named_limits([Limit("anthropic", tokens_per_minute=1000)],
                         '{"openai": {"concurrency": 4, "per_minute": 60}}')
    assert listed["openai"] == keyed["openai"] == Limit("openai", concurrency=4, per_minute=60)
    assert set(keyed) == {"anthropic", "openai"}
    file_wins = named_limits([Limit("openai", concurrency=1)], '{"openai": {"concurrency": 9}}')
    assert file_wins["openai"].concurrency == 1
    for bad in ('[{', '[{"name": "x"}]', '[{"name": "x", "concurrency": 0}]',
                '[{"name": "x", "per_minute": 1.5}]', '[{"name": "x", "color": 1}]', '3'):
        with pytest.raises(ConfigError):
            named_limits([], bad)
    for limit in (Limit("bad name", concurrency=1), Limit("x", concurrency=True),
                  Limit("x", per_minute=5, ttl=0), Limit("x", per_minute=5, period=float("inf"))):
        with pytest.raises(ConfigError):
            named_limits([limit])


def test_a_slot_lost_mid_run_cancels_the_run_cooperatively(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    world = World(tmp_path, clock)
    guard = world.guard()
    seen: list[tuple[bool, str | None]] = []

    def agent(ctx: RunContext) -> str:
        [holder] = guard.limits.store.holders(ONE)
        seen.append((ctx.cancel_requested, ctx.cancel_reason))
        guard.limits.store.release_slot(ONE, holder)  # expired, or taken by someone else
        guard.limits.renew([(ONE, holder)])  # what the keeper thread does every ttl/3
        seen.append((ctx.cancel_requested, ctx.cancel_reason))
        return "stopped" if ctx.cancel_requested else "ran on"

    spec = spec_of(agent, limits=["one"])
    guard.run_sync(spec, world.message(spec))
    assert seen == [(False, None), (True, "limit 'one' slot lost")]

    def plain(ctx: RunContext) -> str:
        seen.append((ctx.cancel_requested, ctx.cancel_reason))
        return "ok"

    seen.clear()  # a later run without limits is not touched by the earlier loss
    spec = spec_of(plain, name="plain")
    assert guard.run_sync(spec, world.message(spec)).state is RunState.SUCCEEDED
    assert seen == [(False, None)]


def test_a_slot_lost_mid_run_stops_an_async_run_too(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    world = World(tmp_path, clock)
    guard = world.guard()
    seen: list[str | None] = []

    async def agent(ctx: RunContext) -> str:
        [holder] = guard.limits.store.holders(ONE)
        guard.limits.store.release_slot(ONE, holder)
        await asyncio.to_thread(guard.limits.renew, [(ONE, holder)])  # the keeper's thread
        seen.append(ctx.cancel_reason)
        return "stopped" if ctx.cancel_requested else "ran on"

    spec = spec_of(agent, limits=["one"], name="async_job")
    outcome = asyncio.run(guard.run_async(spec, world.message(spec)))
    assert seen == [] and outcome.state is RunState.CANCELLED  # its task cancelled, as on a lost lease
    assert outcome.error == "limit 'one' slot lost"
