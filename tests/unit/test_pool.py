"""The asyncio pool without a broker: Celery's targets and callbacks stubbed."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from billiard.exceptions import WorkerLostError
from celery.exceptions import SoftTimeLimitExceeded, Terminated

from tests.services import wait_for
from workers.pool import AsyncIOPool, defer

ON_LOOP = "t.on_loop"


class Recorder:
    """Stands in for a Celery request's callbacks."""

    def __init__(self) -> None:
        self.accepted: list[int] = []
        self.results: list[Any] = []
        self.timeouts: list[tuple[bool, float]] = []

    def kwargs(self) -> dict[str, Any]:
        return {"callback": self.results.append,
                "accept_callback": lambda pid, _t: self.accepted.append(pid),
                "timeout_callback": lambda soft, limit: self.timeouts.append((soft, limit))}


def _app(shutdown_timeout: float = 5.0) -> Any:
    tasks = {ON_LOOP: SimpleNamespace(runs_on_loop=True), "t.sync": SimpleNamespace()}
    return SimpleNamespace(tasks=tasks, conf={"agentcron_shutdown_timeout": shutdown_timeout})


@pytest.fixture
def pool() -> Iterator[AsyncIOPool]:
    pool = AsyncIOPool(limit=100, app=_app())
    pool.start()
    yield pool
    pool.terminate()


def error_of(ret: Any) -> BaseException:
    """The exception in a failure triple, unwrapped as Celery's Request does."""
    exc = ret[1].exception
    return getattr(exc, "exc", exc)  # type: ignore[no-any-return]


def deferring(make: Callable[[], Any]) -> Callable[..., Any]:
    """A tracer stand-in: the task body defers a coroutine and returns Celery's triple."""

    def target(name: str) -> tuple[int, Any, float]:
        defer(make())
        return (0, "None", 0.0)

    return target


def test_deferred_coroutines_run_concurrently_on_one_loop(pool: AsyncIOPool) -> None:
    threads: set[str] = set()

    async def work() -> str:
        await asyncio.sleep(0.5)
        threads.add(threading.current_thread().name)
        return "ok"

    rec = Recorder()
    for _ in range(100):
        pool.apply_async(deferring(work), args=(ON_LOOP,), **rec.kwargs())
    wait_for(lambda: len(rec.results) == 100, timeout=3, what="100 runs of 0.5 s")
    assert threads == {"agentcron-loop"}
    assert all(r[0] == 0 and r[1] == "'ok'" for r in rec.results)
    assert len(set(rec.accepted)) == 100  # one pseudo pid per run, for terminate_job


def test_a_plain_target_runs_in_an_executor_thread(pool: AsyncIOPool) -> None:
    rec = Recorder()
    seen: list[str] = []

    def target(name: str) -> tuple[int, Any, float]:
        seen.append(threading.current_thread().name)
        return (0, "'x'", 0.0)

    pool.apply_async(target, args=("t.sync",), **rec.kwargs())
    wait_for(lambda: rec.results, timeout=2)
    assert seen and seen[0] != "agentcron-loop"


def test_hard_limit_cancels_and_reports_through_timeout_callback(pool: AsyncIOPool) -> None:
    cancelled = threading.Event()

    async def hang() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    rec = Recorder()
    pool.apply_async(deferring(hang), args=(ON_LOOP,), timeout=0.2, **rec.kwargs())
    assert cancelled.wait(3)
    wait_for(lambda: rec.timeouts == [(False, 0.2)], timeout=2)
    assert rec.results == []  # Celery's on_timeout already acknowledged it
    wait_for(lambda: pool.in_flight == 0, timeout=2)


def test_soft_limit_reports_soft_time_limit_exceeded(pool: AsyncIOPool) -> None:
    rec = Recorder()
    pool.apply_async(deferring(lambda: asyncio.sleep(3600)), args=(ON_LOOP,), soft_timeout=0.1,
                     **rec.kwargs())
    wait_for(lambda: rec.results, timeout=3)
    failed, _einfo, _runtime = rec.results[0]
    assert failed == 1 and isinstance(error_of(rec.results[0]), SoftTimeLimitExceeded)
    assert rec.timeouts == [(True, 0.1)]


def test_terminate_job_cancels_the_coroutine(pool: AsyncIOPool) -> None:
    rec = Recorder()
    pool.apply_async(deferring(lambda: asyncio.sleep(3600)), args=(ON_LOOP,), **rec.kwargs())
    wait_for(lambda: rec.accepted, timeout=2)
    pool.terminate_job(rec.accepted[0], 15)
    wait_for(lambda: rec.results, timeout=2)
    assert isinstance(error_of(rec.results[0]), Terminated)


def test_warm_stop_drains_in_flight_runs() -> None:
    pool = AsyncIOPool(limit=10, app=_app(shutdown_timeout=5))
    pool.start()
    rec = Recorder()

    async def work() -> str:
        await asyncio.sleep(0.3)
        return "done"

    for _ in range(10):
        pool.apply_async(deferring(work), args=(ON_LOOP,), **rec.kwargs())
    wait_for(lambda: pool.in_flight == 10, timeout=2)
    pool.stop()
    assert [r[0] for r in rec.results] == [0] * 10


def test_warm_stop_cancels_after_the_timeout_as_a_lost_worker() -> None:
    pool = AsyncIOPool(limit=10, app=_app(shutdown_timeout=0.2))
    pool.start()
    rec = Recorder()
    pool.apply_async(deferring(lambda: asyncio.sleep(3600)), args=(ON_LOOP,), **rec.kwargs())
    wait_for(lambda: pool.in_flight == 1, timeout=2)
    pool.stop()
    assert len(rec.results) == 1
    assert isinstance(error_of(rec.results[0]), WorkerLostError)  # so it is redelivered


def test_body_failure_after_defer_closes_the_coroutine(pool: AsyncIOPool) -> None:
    started: list[bool] = []

    async def never() -> None:
        started.append(True)

    def target(name: str) -> tuple[int, Any, float]:
        defer(never())
        return (1, "einfo", 0.0)

    rec = Recorder()
    pool.apply_async(target, args=(ON_LOOP,), **rec.kwargs())
    wait_for(lambda: rec.results, timeout=2)
    assert rec.results == [(1, "einfo", 0.0)] and started == []


def test_defer_outside_the_pool_runs_on_one_shared_loop() -> None:
    loops: list[int] = []

    async def where() -> int:
        loops.append(id(asyncio.get_running_loop()))
        return 7

    assert defer(where()) == 7
    assert defer(where()) == 7
    assert len(set(loops)) == 1


def test_cancel_on_connection_loss_as_celery_calls_it(pool: AsyncIOPool) -> None:
    """Celery's Request.cancel: terminate_job(pid), then terminate() on the apply result."""

    async def work() -> None:
        await asyncio.sleep(30)

    rec = Recorder()
    result = pool.apply_async(deferring(work), args=(ON_LOOP,), **rec.kwargs())
    wait_for(lambda: rec.accepted, timeout=2)
    pool.terminate_job(rec.accepted[0], 15)
    result.terminate(15)  # must not raise: Celery would log the run as not cancelled
    wait_for(lambda: rec.results, timeout=2)
    assert isinstance(error_of(rec.results[0]), Terminated)


def test_apply_result_waits_for_the_run_without_a_future_per_run(pool: AsyncIOPool) -> None:
    rec = Recorder()

    async def work() -> str:
        await asyncio.sleep(0.2)
        return "ok"

    results = [pool.apply_async(deferring(work), args=(ON_LOOP,), **rec.kwargs())
               for _ in range(50)]  # fmt: skip
    for result in results:
        result.get(timeout=3)
    assert len(rec.results) == 50
    hung = pool.apply_async(deferring(lambda: asyncio.sleep(3600)), args=(ON_LOOP,),
                            **rec.kwargs())  # fmt: skip
    with pytest.raises(TimeoutError):
        hung.get(timeout=0.1)


def test_starting_the_pool_settles_the_collector_once(pool: AsyncIOPool) -> None:
    import gc

    from workers.bodies import BODIES
    from workers.pool import settle_collector

    assert BODIES.keep  # Celery's strategy and tracer share each decoded body here
    assert gc.get_freeze_count() > 0  # the start-up heap is out of the collector's sight
    assert gc.get_threshold()[0] == AsyncIOPool.gc_young_threshold
    frozen = gc.get_freeze_count()
    settle_collector(5)  # once per process: a second pool start changes nothing
    assert gc.get_threshold()[0] == AsyncIOPool.gc_young_threshold
    assert gc.get_freeze_count() == frozen


def test_a_body_parks_its_coroutine_only_while_the_pool_runs_it() -> None:
    from workers.loop import run_parked

    async def answer() -> int:
        return 42

    coro = answer()
    ret, parked = run_parked(lambda: defer(coro))
    assert ret is None and parked is coro
    coro.close()
    assert defer(answer()) == 42  # outside the pool's tracer: the fallback loop runs it

    failed = answer()

    def body() -> None:
        defer(failed)
        raise RuntimeError("body broke after deferring")

    with pytest.raises(RuntimeError):
        run_parked(body)
    assert inspect.getcoroutinestate(failed) == inspect.CORO_CLOSED  # never left un-awaited
