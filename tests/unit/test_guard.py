"""The guard on a real SQLite ledger with in-memory leases and an injected clock."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.backoff import backoff_delay
from agentcron.clock import FrozenClock, SystemClock
from agentcron.context import RunCancelled, RunContext
from agentcron.guard import Guard, RunReport
from agentcron.jobs import Job, JobSpec, compile_job
from agentcron.leases.cancel import MemoryCancelSignals
from agentcron.leases.memory import MemoryLeaseStore
from agentcron.ledger.records import RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import RunMessage
from agentcron.settings import Settings
from agentcron.windows import window_key, window_start

SLOT = "2026-03-17T06:00:00Z"


class World:
    """A guard, its ledger and stores, and helpers to make messages."""

    def __init__(self, tmp: Path, clock: Any) -> None:
        self.clock = clock
        self.ledger = Ledger(f"sqlite:///{tmp / 'ledger.sqlite'}", clock)
        self.leases = MemoryLeaseStore(clock)
        self.cancels = MemoryCancelSignals(clock)
        self.settings = Settings(data_dir=tmp)

    def guard(self, name: str = "w1", seed: int = 7) -> Guard:
        return Guard(self.ledger, self.leases, self.cancels, self.clock, worker_id=name,
                     settings=self.settings, rng=random.Random(seed))

    def message(self, spec: JobSpec, slot: str = SLOT, **kw: Any) -> RunMessage:
        at = FrozenClock(slot).now()
        start = window_start(at, spec.job.window, spec.job.tz)
        return RunMessage(spec.name, window_key(spec.name, start), start, at, **kw)


def make_spec(agent: Any, **kw: Any) -> JobSpec:
    kw.setdefault("schedule", "0 6 * * *")
    return compile_job(Job(kw.pop("name", "job"), agent=agent, **kw))


@pytest.fixture
def world(tmp_path: Path, clock: FrozenClock) -> World:
    return World(tmp_path, clock)


Agent = Callable[[RunContext], Any]


def counting(result: Any = None, fail_times: int = 0) -> tuple[Agent, list[int]]:
    calls: list[int] = []

    def agent(ctx: RunContext) -> Any:
        calls.append(ctx.attempt)
        if len(calls) <= fail_times:
            raise RuntimeError(f"boom {len(calls)}")
        return result if result is not None else {"window": ctx.window_key}

    return agent, calls


def test_success_is_recorded_once_and_callbacks_fire_once(world: World) -> None:
    reports: list[RunReport] = []
    agent, calls = counting()
    spec = make_spec(agent, on_success=reports.append)
    message = world.message(spec)
    first = world.guard().run_sync(spec, message)
    again = world.guard("w2").run_sync(spec, message)
    assert first.state is RunState.SUCCEEDED and not first.duplicate
    assert again.duplicate and again.state is None
    assert calls == [1]
    row = world.ledger.get(spec.name, message.window_start)
    assert row is not None and row.state is RunState.SUCCEEDED and row.result == first.result
    assert [r.state for r in reports] == ["succeeded"]


def test_retries_use_backoff_with_seeded_jitter(world: World) -> None:
    agent, calls = counting(fail_times=2)
    spec = make_spec(agent, max_retries=3, backoff_base=2, backoff_cap=100)
    outcome = world.guard(seed=11).run_sync(spec, world.message(spec))
    rng = random.Random(11)
    expected = [backoff_delay(1, 2, 100, rng), backoff_delay(2, 2, 100, rng)]
    assert outcome.state is RunState.SUCCEEDED and outcome.attempts == 3
    assert calls == [1, 2, 3]
    assert world.clock.slept == pytest.approx(expected)


def test_attempts_exhausted_fail_with_last_error_and_one_failure_callback(world: World) -> None:
    failures: list[RunReport] = []
    agent, calls = counting(fail_times=10)
    spec = make_spec(agent, max_retries=2, on_failure=failures.append)
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.FAILED and "boom 2" in (outcome.error or "")
    assert calls == [1, 2]
    assert len(failures) == 1 and failures[0].state == "failed"


def test_unserialisable_result_fails_without_retry(world: World) -> None:
    agent, calls = counting(result={1, 2})
    spec = make_spec(agent, max_retries=3)
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.FAILED
    assert "result not serialisable" in (outcome.error or "")
    assert calls == [1]


def test_oversized_result_is_rejected_with_size_and_limit(world: World) -> None:
    world.ledger.result_max_bytes = 100
    agent, _ = counting(result={"text": "x" * 500})
    spec = make_spec(agent)
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.FAILED
    assert "too large" in (outcome.error or "") and "100" in (outcome.error or "")


def test_overlap_skip_records_the_new_window_skipped(world: World) -> None:
    agent, calls = counting()
    spec = make_spec(agent, overlap="skip")
    held = world.leases.acquire(spec.name, "other-run", 60)
    assert held is not None
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.SKIPPED and "overlap" in (outcome.error or "")
    assert calls == []


def test_redelivery_while_running_elsewhere_is_a_duplicate(world: World) -> None:
    agent, calls = counting()
    spec = make_spec(agent)
    message = world.message(spec)
    lease = world.leases.acquire(spec.name, "live-holder", 60)
    assert lease is not None
    window = RunMessage.from_kwargs(message.to_kwargs())
    from agentcron.ledger.records import NewWindow

    world.ledger.claim(NewWindow(window.job, window.window_start, window.window_key, window.slot),
                       lease.token, "other-worker", 3)
    acquire = world.leases.acquire

    def live_holder_renews(name: str, owner: str, ttl: float) -> Any:
        world.leases.renew(lease, 60)  # the holder is alive: its renewer keeps the lease
        return acquire(name, owner, ttl)

    world.leases.acquire = live_holder_renews  # type: ignore[method-assign]
    outcome = world.guard().run_sync(spec, message)
    assert outcome.duplicate and calls == []


def test_redelivery_after_the_holder_died_runs_once_its_lease_expires(world: World) -> None:
    """Scenario 1: a killed holder's lease outlives it; the redelivery waits one TTL, then runs."""
    agent, calls = counting()
    spec = make_spec(agent, lease_ttl=10)
    message = world.message(spec)
    from agentcron.ledger.records import NewWindow

    lease = world.leases.acquire(spec.name, "dead-holder", 10)
    assert lease is not None
    world.ledger.claim(NewWindow(message.job, message.window_start, message.window_key,
                                 message.slot), lease.token, "dead-worker", 3)  # fmt: skip
    before = world.clock.monotonic()
    outcome = world.guard().run_sync(spec, message)
    assert outcome.state is RunState.SUCCEEDED and len(calls) == 1
    assert 10 <= world.clock.monotonic() - before <= 10 * 1.25 + 1.5


def test_stale_holder_is_fenced_and_exactly_one_success(world: World) -> None:
    """Scenario 12: A pauses past its lease, B takes over and succeeds; A's completion is fenced."""
    spec_holder: list[JobSpec] = []
    outcomes: list[Any] = []

    def slow(ctx: RunContext) -> str:
        if ctx.attempt == 1 and not outcomes:
            world.clock.advance(spec_holder[0].lease_ttl + timedelta(seconds=1))
            other = threading.Thread(
                target=lambda: outcomes.append(world.guard("w2").run_sync(spec_holder[0], message))
            )
            other.start()
            other.join()
        return f"ran by attempt {ctx.attempt}"

    spec = make_spec(slow, lease_ttl=10)
    spec_holder.append(spec)
    message = world.message(spec)
    stale = world.guard("w1").run_sync(spec, message)
    assert outcomes[0].state is RunState.SUCCEEDED
    assert stale.duplicate and "fenced" in stale.detail
    rows = world.ledger.list_runs(spec.name)
    assert [r.state for r in rows] == [RunState.SUCCEEDED]


def test_misfire_grace_marks_a_late_window_missed(world: World) -> None:
    agent, calls = counting()
    spec = make_spec(agent, misfire_grace=60)
    world.clock.advance(120)
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.MISSED and "misfire" in (outcome.error or "")
    assert calls == []


def test_manual_force_reruns_a_succeeded_window(world: World) -> None:
    agent, calls = counting()
    spec = make_spec(agent)
    world.guard().run_sync(spec, world.message(spec))
    forced = world.guard().run_sync(spec, world.message(spec, trigger="manual", force=True))
    assert forced.state is RunState.SUCCEEDED and calls == [1, 1]


async def test_async_agent_success_and_async_callback(tmp_path: Path) -> None:
    world = World(tmp_path, SystemClock())
    seen: list[str] = []

    async def agent(ctx: RunContext) -> dict[str, str]:
        await asyncio.sleep(0)
        return {"key": ctx.window_key}

    async def on_success(report: RunReport) -> None:
        seen.append(report.window_key)

    spec = make_spec(agent, on_success=on_success, misfire_grace="3650d")
    outcome = await world.guard().run_async(spec, world.message(spec))
    assert outcome.state is RunState.SUCCEEDED and seen == [outcome.result["key"]]


async def test_async_timeout_ends_as_timeout_without_blocking_others(tmp_path: Path) -> None:
    world = World(tmp_path, SystemClock())

    async def hang(ctx: RunContext) -> None:
        await asyncio.sleep(3600)

    async def quick(ctx: RunContext) -> str:
        return "ok"

    hung = make_spec(hang, name="hung", timeout=0.3, misfire_grace="3650d")
    fast = make_spec(quick, name="fast", misfire_grace="3650d")
    guard = world.guard()
    results = await asyncio.gather(guard.run_async(hung, world.message(hung)),
                                   guard.run_async(fast, world.message(fast)))
    assert results[0].state is RunState.TIMEOUT
    assert results[1].state is RunState.SUCCEEDED


async def test_an_agents_own_timeout_error_is_a_failure_not_the_jobs_timeout(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, SystemClock())

    async def http_call(ctx: RunContext) -> None:
        raise TimeoutError("upstream did not answer")

    for limit in (None, 30):
        spec = make_spec(http_call, name=f"t{limit or 0}", timeout=limit, misfire_grace="3650d")
        outcome = await world.guard().run_async(spec, world.message(spec))
        assert outcome.state is RunState.FAILED
        assert "upstream did not answer" in (outcome.error or "")


async def test_cancel_other_cancels_the_running_window(tmp_path: Path) -> None:
    world = World(tmp_path, SystemClock())
    started = asyncio.Event()

    runs: list[str] = []

    async def long_agent(ctx: RunContext) -> str:
        runs.append(ctx.window_key)
        if len(runs) == 1:
            started.set()
            await asyncio.sleep(30)
        return "finished"

    spec = make_spec(long_agent, overlap="cancel_other", lease_ttl=1, schedule="*/10s",
                     misfire_grace="3650d")
    guard = world.guard()
    first = asyncio.create_task(guard.run_async(spec, world.message(spec, "2026-03-17T06:00:00Z")))
    await asyncio.wait_for(started.wait(), 5)
    started.clear()
    second = await asyncio.wait_for(
        guard.run_async(spec, world.message(spec, "2026-03-17T06:00:10Z")), 10
    )
    assert (await first).state is RunState.CANCELLED
    assert second.state is RunState.SUCCEEDED
    states = sorted(r.state.value for r in world.ledger.list_runs(spec.name))
    assert states == ["cancelled", "succeeded"]


def test_sync_agent_cooperative_cancel(world: World) -> None:
    def agent(ctx: RunContext) -> None:
        ctx.request_cancel("stop please")
        ctx.raise_if_cancelled()

    spec = make_spec(agent)
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.CANCELLED
    assert isinstance(RunCancelled("x"), Exception)


def test_run_killed_by_its_hard_limit_is_recorded_timeout(world: World) -> None:
    """Scenario 13: the holder died at its hard time limit; its lease expired; the redelivery
    records the window `timeout` instead of running it again."""
    from agentcron.ledger.records import NewWindow

    agent, calls = counting()
    spec = make_spec(agent, timeout=30, lease_ttl=10)
    message = world.message(spec)
    window = NewWindow(message.job, message.window_start, message.window_key, message.slot)
    dead = world.leases.acquire(spec.name, "0.dead", 10)
    assert dead is not None
    world.ledger.claim(window, dead.token, "dead-worker", 3)
    world.ledger.start(message.job, message.window_start, dead.token)
    world.clock.advance(45)
    outcome = world.guard().run_sync(spec, message)
    assert outcome.state is RunState.TIMEOUT and calls == []
    row = world.ledger.get(message.job, message.window_start)
    assert row is not None and row.state is RunState.TIMEOUT


def test_worker_lost_too_often_fails_the_window(world: World) -> None:
    """Scenario 16 at the guard level: every delivery's holder died; the cap ends it `failed`."""
    from agentcron.ledger.records import NewWindow

    agent, calls = counting()
    spec = make_spec(agent, max_retries=2, lease_ttl=5)
    message = world.message(spec)
    window = NewWindow(message.job, message.window_start, message.window_key, message.slot)
    for _ in range(2):
        lease = world.leases.acquire(spec.name, "0.crash", 5)
        assert lease is not None
        world.ledger.claim(window, lease.token, "crashing-worker", 2)
        world.clock.advance(6)
    outcome = world.guard().run_sync(spec, message)
    assert outcome.state is RunState.FAILED and "worker lost 2 times" in (outcome.error or "")
    assert calls == []


async def test_concurrent_async_runs_share_ledger_transactions(tmp_path: Path) -> None:
    """200 async runs on one loop: every window succeeds once, in far fewer than 400 commits
    and 400 lease round trips."""
    world = World(tmp_path, SystemClock())

    async def agent(ctx: RunContext) -> str:
        await asyncio.sleep(0.05)
        return ctx.window_key

    spec = make_spec(agent, schedule="*/1s", overlap="allow", misfire_grace="3650d")
    guard = world.guard()
    base = FrozenClock(SLOT).now()
    messages = [world.message(spec, (base + timedelta(seconds=i)).isoformat()) for i in range(200)]
    outcomes = await asyncio.gather(*(guard.run_async(spec, m) for m in messages))
    assert [o.state for o in outcomes].count(RunState.SUCCEEDED) == 200
    assert world.ledger.count_by_state(spec.name) == {"succeeded": 200}
    batches = guard._async_mode.batcher(world.ledger).stats()
    assert batches["claim_batches"] + batches["complete_batches"] < 100
    leases = guard._async_mode.lease_batcher(world.leases).stats()
    assert leases["acquire_batches"] + leases["release_batches"] < 100


def test_skipped_redelivery_ends_a_window_its_dead_holder_left_running(world: World) -> None:
    """Soak finding: a killed run left its row 'running'; its redelivery arrives while a newer
    window holds the job's lease (overlap skip). The window must end 'skipped', not stay active."""
    from agentcron.ledger.records import NewWindow

    agent, calls = counting()
    spec = make_spec(agent, schedule="*/1s")
    old = world.message(spec, "2026-03-17T06:00:00Z", trigger="manual")
    dead = world.leases.acquire(spec.name, "dead-holder", 60)
    assert dead is not None
    world.ledger.claim(NewWindow(old.job, old.window_start, old.window_key, old.slot),
                       dead.token, "dead-worker", 3, running=True)  # fmt: skip
    world.leases.release(dead)
    newer = world.leases.acquire(spec.name, "newer-window", 60)  # a live run of a later window
    assert newer is not None
    outcome = world.guard().run_sync(spec, old)
    assert outcome.state is RunState.SKIPPED and not outcome.duplicate and calls == []
    record = world.ledger.get(old.job, old.window_start)
    assert record is not None and record.state is RunState.SKIPPED and record.error_message
    assert world.leases.holder(spec.name) == newer


def test_skipped_redelivery_leaves_a_live_run_alone(world: World) -> None:
    from agentcron.ledger.records import NewWindow

    agent, calls = counting()
    spec = make_spec(agent, schedule="*/1s")
    old = world.message(spec, "2026-03-17T06:00:00Z", trigger="manual")
    live = world.leases.acquire(spec.name, "window-a", 60)
    assert live is not None
    world.ledger.claim(NewWindow(old.job, old.window_start, old.window_key, old.slot),
                       live.token, "live-worker", 3, running=True)  # fmt: skip
    other = world.message(spec, "2026-03-17T06:00:01Z", trigger="manual")
    outcome = world.guard().run_sync(spec, other)
    assert outcome.state is RunState.SKIPPED  # the other window is skipped ...
    record = world.ledger.get(old.job, old.window_start)
    assert record is not None and record.state is RunState.RUNNING  # ... the live run untouched
    assert calls == []


def test_sync_agent_past_its_timeout_ends_timeout(world: World) -> None:
    """A sync job's timeout is enforced on the main thread (prefork children, solo)."""
    import time

    def sleeper(ctx: RunContext) -> str:
        try:
            time.sleep(5)
        except Exception:  # an agent's broad except must not swallow the time limit
            return "swallowed"
        return "overran"

    spec = make_spec(sleeper, timeout=0.3)
    began = time.monotonic()
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.TIMEOUT and "0.3" in (outcome.error or "")
    assert time.monotonic() - began < 3


async def test_async_interrupt_cancels_only_the_agent_and_only_while_it_runs() -> None:
    """The agent runs in the run's own task: an interrupt becomes RunCancelled; another
    canceller's cancellation (a revoke, a shutdown) still propagates; an interrupt that arrives
    after the agent returned cancels nothing (the completion must not be cut short)."""
    from agentcron.agents import resolve_agent
    from agentcron.guard.modes import AsyncMode

    mode = AsyncMode()
    started = asyncio.Event()

    async def agent(ctx: RunContext) -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    async def quick(ctx: RunContext) -> str:
        return "done"

    def context() -> RunContext:
        now = FrozenClock(SLOT).now()
        return RunContext(job="j", task="t", config={}, window_key="j@x", window_start=now,
                          slot=now)  # fmt: skip

    async def run(target: Callable[..., Any], ctx: RunContext) -> Any:
        return await mode.invoke(resolve_agent(target), ctx, None)

    ctx = context()
    task = asyncio.ensure_future(run(agent, ctx))
    await started.wait()
    mode.interrupt(ctx, "cancel_other")
    with pytest.raises(RunCancelled, match="cancel_other"):
        await task

    started.clear()
    ctx = context()
    task = asyncio.ensure_future(run(agent, ctx))
    await started.wait()
    mode.interrupt(ctx, "lease lost")
    task.cancel("revoked")
    with pytest.raises(asyncio.CancelledError):
        await task

    ctx = context()

    async def finished_then_interrupted() -> str:
        result = await run(quick, ctx)
        mode.interrupt(ctx, "too late")
        await asyncio.sleep(0.01)  # the completion's await: must not be cancelled
        return str(result)

    assert await finished_then_interrupted() == "done"


def test_misfire_counts_from_when_the_window_was_recorded_not_from_delivery(world: World) -> None:
    """A window recorded in time runs however late it is delivered (a broker outage, a worker
    clock ahead); one recorded after its grace is missed (issue 20, S19/S20)."""
    from agentcron.ledger.records import NewWindow

    agent, calls = counting()
    spec = make_spec(agent, misfire_grace=60)
    on_time = world.message(spec)
    world.ledger.record_scheduled([NewWindow(spec.name, on_time.window_start, on_time.window_key,
                                             on_time.slot)])  # fmt: skip
    world.clock.advance(600)  # delivered ten minutes late
    outcome = world.guard().run_sync(spec, on_time)
    assert outcome.state is RunState.SUCCEEDED and calls == [1]
    late = world.message(spec, slot="2026-03-17T06:01:00Z")
    world.ledger.record_scheduled([NewWindow(spec.name, late.window_start, late.window_key,
                                             late.slot)])  # fmt: skip
    outcome = world.guard().run_sync(spec, late)
    assert outcome.state is RunState.MISSED and "emitted 540s after its slot" in (outcome.error or "")
    assert calls == [1]
