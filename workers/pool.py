"""The asyncio pool: one event loop per worker process, many agent runs in flight.

Select it through the app configuration (``AGENTCRON_WORKER_POOL=async celery -A workers.app
worker -Q agentcron.async``, which also sets ``-c`` to ``Settings.async_concurrency``), or with
Celery's out-of-tree hook: ``CELERY_CUSTOM_WORKER_POOL=workers.pool:AsyncIOPool celery -A
workers.app worker -Q agentcron.async -P custom -c 1000`` (Celery 5.7's ``-P`` only takes its
aliases, so ``-P module:Class`` is refused). ``-c`` is the maximum number of runs in flight; with
``worker_prefetch_multiplier=1`` the prefetch count equals it.

How an ``async def`` body gets awaited while Celery keeps its bookkeeping
------------------------------------------------------------------------
The worker hands every request to :meth:`AsyncIOPool.on_apply` as ``target=trace_task_ret`` plus
callbacks (``accept_callback`` sends *task-started*, ``callback`` acknowledges late and sends
*task-succeeded*/*task-failed*, ``timeout_callback`` handles time limits). We keep all of that
Celery's: the pool runs Celery's own tracer, but *on the loop thread*, inside an asyncio task.
A task that is marked ``runs_on_loop = True`` (``agentcron.run_async``) does not do its work in the
tracer; its body calls :func:`defer` with the coroutine, which parks it in a per-run slot (a
context variable, so every asyncio task has its own). When the tracer returns, the pool awaits the
parked coroutine on the same loop and only then calls Celery's callback with the final outcome.
So the ack, the events Flower shows and the failure paths are Celery's, the coroutine is awaited
on the one loop (never ``asyncio.run()`` per task), and cancelling the asyncio task cancels the run.

Any other task (a sync agent forced onto this pool) runs its whole tracer in the loop's thread
executor, so it never blocks the loop.

Time limits: the soft limit cancels the coroutine (reported as ``SoftTimeLimitExceeded``), the
hard limit cancels it and reports through Celery's ``timeout_callback`` without waiting for it.
``revoke(terminate=True)`` cancels the run's asyncio task (reported as ``Terminated``). A warm
shutdown (SIGTERM) stops intake (Celery's consumer), waits up to ``agentcron_shutdown_timeout``
seconds for in-flight runs, then cancels the rest, reporting them as a lost worker so that
``task_reject_on_worker_lost`` redelivers them.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import logging
import reprlib
import time
from collections.abc import Callable
from typing import Any

from celery.concurrency.base import BasePool

from agentcron.delivery.service import DeliveryTask
from agentcron.runtime import start_worker_delivery
from workers.bodies import BODIES
from workers.loop import LoopThread, defer, run_parked
from workers.runs import ApplyResult, Callback, Run, call, failure

__all__ = ["ApplyResult", "AsyncIOPool", "LoopThread", "defer"]

log = logging.getLogger("agentcron.pool")


_SETTLED: list[bool] = []
_NO_TIMERS: list[asyncio.Handle] = []  # shared, never appended to: a run without time limits


def settle_collector(young_threshold: int) -> None:
    """Once per process: what the worker imported and built before its first run (Celery, the
    app, ~190 MB) is moved out of the cyclic collector's sight (``gc.freeze``), and the youngest
    generation is collected every ``young_threshold`` allocations instead of 700. Runs in flight
    keep thousands of frames, futures and timers alive; with the defaults a full collection
    walked all of that and the start-up heap every few hundred runs (bench/RESULTS.md)."""
    if _SETTLED:
        return
    _SETTLED.append(True)
    gc.collect()  # no garbage of the start-up is frozen for good
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(max(young_threshold, 1), middle, old)


class AsyncIOPool(BasePool):  # type: ignore[misc]
    """A Celery pool whose workers are asyncio tasks on one event loop in this process."""

    signal_safe = False
    body_can_be_buffer = True
    gc_young_threshold = 10_000  # allocations between collections of the youngest generation

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(1)
        self._runs: dict[int, Run] = {}
        self._loop_thread: LoopThread | None = None
        self._delivery: DeliveryTask | None = None
        self._incoming: collections.deque[Run] = collections.deque()
        self._wakeup_pending = False
        self.completed = 0

    @property
    def shutdown_timeout(self) -> float:
        """Seconds a warm shutdown waits for in-flight runs before cancelling them."""
        conf = getattr(self.app, "conf", None)
        return float(conf.get("agentcron_shutdown_timeout", 30.0) if conf is not None else 30.0)

    def on_start(self) -> None:
        """Start the one event loop of this worker process."""
        settle_collector(self.gc_young_threshold)
        BODIES.keep = True  # Celery's strategy and tracer both decode each body in this process
        self._loop_thread = LoopThread()
        self._loop_thread.start()
        conf = getattr(self.app, "conf", None)  # the outbox's sender shares this loop
        interval = float(conf.get("agentcron_delivery_interval", 0) if conf is not None else 0)
        self._delivery = start_worker_delivery(self._loop_thread.loop, interval)

    def on_stop(self) -> None:
        """Warm shutdown: drain in-flight runs (cancel what is left after the timeout)."""
        if self._loop_thread is None:
            return
        if self._delivery is not None:
            self._delivery.stop()
        timeout = self.shutdown_timeout
        drained = self._loop_thread.submit(self._drain(timeout))
        try:
            drained.result(timeout + 15)
        except Exception:
            log.exception("draining the asyncio pool failed")
        self._loop_thread.stop()
        self._loop_thread = None

    def on_terminate(self) -> None:
        """Cold shutdown: cancel every run at once."""
        if self._loop_thread is None:
            return
        if self._delivery is not None:
            self._delivery.stop(0.5)
        self._loop_thread.submit(self._drain(0.0)).result(15)
        self._loop_thread.stop()
        self._loop_thread = None

    def on_apply(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callback = None,
        accept_callback: Callback = None,
        timeout_callback: Callback = None,
        soft_timeout: float | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> ApplyResult:
        """Start one request on the loop; returns at once."""
        if self._loop_thread is None:
            raise RuntimeError("the asyncio pool is not started")
        args = tuple(args or ())
        run = Run(
            ident=next(self._ids), target=target, args=args, kwargs=dict(kwargs or {}),
            callback=callback, accept_callback=accept_callback,
            timeout_callback=timeout_callback,
            soft_timeout=soft_timeout or self.options.get("soft_timeout"),
            timeout=timeout or self.options.get("timeout"), on_loop=self._runs_on_loop(args),
        )  # fmt: skip
        # One wake-up of the loop for every burst of requests, not a future and a
        # call_soon_threadsafe per request (the consumer hands over a batch per poll).
        self._incoming.append(run)
        if not self._wakeup_pending:
            self._wakeup_pending = True
            self._loop_thread.loop.call_soon_threadsafe(self._start_incoming)
        return ApplyResult(run)

    def _start_incoming(self) -> None:
        self._wakeup_pending = False  # before draining: a request appended from now on re-wakes
        loop = asyncio.get_running_loop()
        while self._incoming:
            run = self._incoming.popleft()
            run.task = loop.create_task(self._execute(run))

    def _runs_on_loop(self, args: tuple[Any, ...]) -> bool:
        tasks = getattr(self.app, "tasks", None)
        if not args or tasks is None:
            return False
        task = tasks.get(args[0]) if isinstance(args[0], str) else None
        return bool(getattr(task, "runs_on_loop", False))

    async def _execute(self, run: Run) -> None:
        # The tracer and the deferred coroutine are awaited in this one frame (not a helper
        # coroutine per run: every frame is kept for as long as the run is in flight).
        loop = asyncio.get_running_loop()
        run.task = asyncio.current_task()
        run.started = time.monotonic()
        self._runs[run.ident] = run
        timers = self._arm_limits(loop, run)
        try:
            call(run.accept_callback, run.ident, time.monotonic())
            run.accept_callback = None  # called once; the run may go on for hours
            if not run.on_loop:
                ret = await loop.run_in_executor(None, run.start)
            else:
                ret, coro = run_parked(run.start)
                if coro is not None and ret[0]:  # the body failed after deferring
                    coro.close()  # never leave the coroutine un-awaited
                elif coro is not None:
                    result = await coro
                    ret = (0, reprlib.repr(result), time.monotonic() - run.started)
        except asyncio.CancelledError:
            ret = run.stopped()
        except Exception as exc:  # the tracer itself broke: report it as Celery would
            ret = (1, failure(exc), time.monotonic() - run.started)
        finally:
            for timer in timers:
                timer.cancel()
            self._runs.pop(run.ident, None)
            self.completed += 1
        if ret is not None:
            call(run.callback, ret)
        run.finished()

    def _arm_limits(self, loop: asyncio.AbstractEventLoop, run: Run) -> list[asyncio.Handle]:
        timers: list[asyncio.Handle] = _NO_TIMERS
        if run.soft_timeout or run.timeout:
            timers = []
        if run.soft_timeout:
            timers.append(loop.call_later(run.soft_timeout, self._expire, run, "soft"))
        if run.timeout:
            timers.append(loop.call_later(run.timeout, self._expire, run, "hard"))
        return timers

    def _expire(self, run: Run, kind: str) -> None:
        if run.task is None or run.task.done() or run.stopped_by == "hard":
            return
        run.stopped_by = kind
        limit = run.soft_timeout if kind == "soft" else run.timeout
        log.warning("%s time limit (%ss) reached: cancelling run %d", kind, limit, run.ident)
        call(run.timeout_callback, kind == "soft", limit)
        run.task.cancel(f"{kind} time limit")

    def terminate_job(self, pid: int, signal: int | None = None) -> None:
        """``revoke(terminate=True)``: cancel the run's coroutine."""
        run = self._runs.get(pid)
        if run is None or self._loop_thread is None:
            return

        def cancel() -> None:
            if run.task is not None and not run.task.done():
                run.stopped_by, run.signal = "terminate", signal
                run.task.cancel("revoked")

        self._loop_thread.loop.call_soon_threadsafe(cancel)

    async def _drain(self, grace: float) -> None:
        await asyncio.sleep(0)
        pending = {run.task for run in self._runs.values() if run.task is not None}
        if not pending:
            return
        log.info("draining %d run(s) in flight (up to %.0fs)", len(pending), grace)
        left = pending
        if grace > 0:
            _done, left = await asyncio.wait(pending, timeout=grace)
        for task in left:
            task.cancel("worker shutdown")
        if left:
            log.warning("cancelled %d run(s) still in flight at shutdown", len(left))
            await asyncio.wait(left, timeout=10)

    @property
    def in_flight(self) -> int:
        """Runs currently on the loop."""
        return len(self._runs)

    def _get_info(self) -> dict[str, Any]:
        info: dict[str, Any] = super()._get_info()
        info.update({"max-concurrency": self.limit, "in-flight": self.in_flight,
                     "completed": self.completed})
        return info

    @property
    def num_processes(self) -> int:
        """One process: this one."""
        return 1
