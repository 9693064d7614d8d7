"""``AsyncAgentScheduler``: one agent on a schedule inside a running asyncio application.

Safe to construct anywhere: its asyncio primitives are made on first async entry and bound to
the caller's loop (made again if a later ``start`` runs on another loop), so constructing at
import time and starting in uvicorn's or pytest's loop never raises "attached to a different
loop". Slots come from the schedule, each run's window key from its slot; all waiting goes
through the injected :class:`~agentcron.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime
from typing import Any

from agentcron.agents import resolve_agent
from agentcron.callbacks import Callback
from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.inprocess.options import SchedulerOptions, check_max_retries, job_name_for
from agentcron.inprocess.runner import PlainRunner, RunTarget, WindowRunner
from agentcron.inprocess.stats import StatsRecorder
from agentcron.messages import RunMessage
from agentcron.runloop import describe_error
from agentcron.schedules import Schedule, parse_schedule
from agentcron.windows import window_key, window_start

log = logging.getLogger("agentcron.inprocess")

MAX_COALESCED = 100_000
"""How many overdue slots one step may skip over (a guard against absurd clock jumps)."""


class AsyncAgentScheduler:
    """Runs ``agent`` on ``task`` at every slot of a schedule, in the caller's event loop.

    ``on_success(result)`` and ``on_failure(error)`` may be sync or async (async ones are
    awaited). With ``database_url`` every window goes through the ledger and lease guard, so
    several processes running the same schedule under the same ``name`` run each window once.
    """

    def __init__(
        self,
        agent: Any,
        task: str,
        config: dict[str, Any] | None = None,
        on_success: Callback | None = None,
        on_failure: Callback | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        name: str | None = None,
        database_url: str | None = None,
        rng: random.Random | None = None,
        options: SchedulerOptions | None = None,
    ) -> None:
        resolved = resolve_agent(agent)
        self.name = job_name_for(resolved, name)
        self.options = (options or SchedulerOptions()).validate()
        self.target = RunTarget(resolved, task, dict(config or {}), on_success, on_failure)
        self.database_url = database_url
        self._clock = clock
        self._rng = rng
        self._stats = StatsRecorder(self.name, clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._runner: WindowRunner | None = None
        self._max_retries = 3

    @property
    def task(self) -> str:
        """The task text given to the agent."""
        return self.target.task

    @property
    def is_running(self) -> bool:
        """True between a successful ``start`` and the end of ``stop``."""
        return self._task is not None and not self._task.done()

    def _primitives(self) -> tuple[asyncio.Lock, asyncio.Event]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._lock is None or self._stop is None:
            if self.is_running:
                raise RuntimeError(f"scheduler {self.name!r} is running on another event loop")
            self._loop, self._lock, self._stop = loop, asyncio.Lock(), asyncio.Event()
        return self._lock, self._stop

    async def start(
        self, schedule_expr: str, max_retries: int = 3, run_immediately: bool = False
    ) -> bool:
        """Start the schedule; False if already running. A bad expression raises ConfigError.

        ``max_retries`` is the number of total attempts per window; ``run_immediately`` runs
        the window that contains "now" (trigger ``manual``) before waiting for the next slot.
        """
        schedule = parse_schedule(schedule_expr, self.options.tz)
        self._max_retries = check_max_retries(max_retries)
        lock, stop = self._primitives()
        async with lock:
            if self.is_running:
                log.warning("scheduler %s is already running", self.name)
                return False
            stop.clear()
            self._runner = await self._make_runner(schedule_expr)
            self._stats.started()
            self._task = asyncio.get_running_loop().create_task(
                self._serve(schedule, run_immediately), name=f"agentcron-inprocess-{self.name}"
            )
        log.info("scheduler %s started: %s, %d attempt(s) per window", self.name,
                 schedule.describe(), max_retries)
        return True

    async def _make_runner(self, schedule_expr: str) -> WindowRunner:
        if not self.database_url:
            return PlainRunner(self.target, self._clock, self.options, self._sleep, self._rng)
        from agentcron.inprocess.guarded import GuardedRunner, build_spec

        spec = build_spec(self.name, self.target, self.options, schedule_expr, self._max_retries)
        return await asyncio.to_thread(GuardedRunner.open, spec, self.target, self._clock,
                                       self.database_url, self._rng)

    async def stop(self, timeout: float = 30.0) -> dict[str, Any]:  # noqa: ASYNC109 - the seed's API
        """Stop scheduling; wait up to ``timeout`` for the run in flight, then cancel it.

        Returns (and logs) the statistics of :meth:`get_stats`.
        """
        lock, stop = self._primitives()
        async with lock:
            task = self._task
            if task is not None:
                stop.set()
                if not task.done() and not await self._finished_within(task, timeout):
                    log.warning("scheduler %s: run still in flight after %.1fs, cancelling",
                                self.name, timeout)
                    if self._runner is not None:
                        self._runner.request_cancel("scheduler stopping")
                    task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self._task = None
            if self._runner is not None:
                self._runner.close()
                self._runner = None
            self._stats.stopped()
        stats = self.get_stats()
        log.info("scheduler %s stopped: %s", self.name, stats)
        return stats

    async def _finished_within(self, task: asyncio.Task[None], seconds: float) -> bool:
        sleeper = asyncio.ensure_future(self._clock.asleep(seconds))
        try:
            await asyncio.wait({task, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sleeper
        return task.done()

    def get_stats(self) -> dict[str, Any]:
        """is_running, total/successful/failed/cancelled executions, success_rate,
        runtime_seconds, last_run, next_run and more, as a dict."""
        return self._stats.snapshot().as_dict()

    async def _sleep(self, seconds: float) -> bool:
        """Wait on the clock, or until stop; True if the scheduler should go on."""
        stop = self._stop
        if stop is None or stop.is_set():
            return False
        sleeper = asyncio.ensure_future(self._clock.asleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeper, stopper):
                waiter.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return not stop.is_set()

    async def _serve(self, schedule: Schedule, run_immediately: bool) -> None:
        after = self._clock.now()
        try:
            if run_immediately:
                await self._run_window(self._current_slot(schedule, after), "manual")
            while self._stop is not None and not self._stop.is_set():
                slot = self._next_slot(schedule, after)
                self._stats.next_run = slot
                if slot is None:
                    log.info("scheduler %s: the schedule has no more slots", self.name)
                    break
                delay = (slot - self._clock.now()).total_seconds()
                if delay > 0 and not await self._sleep(delay):
                    break
                await self._run_window(slot, "schedule")
                after = slot
        except Exception:
            log.exception("scheduler %s stopped by an internal error", self.name)
            raise
        finally:
            self._stats.stopped()

    def _next_slot(self, schedule: Schedule, after: datetime) -> datetime | None:
        """The next slot after ``after``; when several are overdue, only the latest (coalesce)."""
        slot = schedule.next_fire(after)
        now = self._clock.now()
        skipped = 0
        while slot is not None and skipped < MAX_COALESCED:
            following = schedule.next_fire(slot)
            if following is None or following > now:
                break
            slot, skipped = following, skipped + 1
        if skipped:
            log.warning("scheduler %s: %d overdue slot(s) skipped", self.name, skipped)
            self._stats.count("missed", amount=skipped)
        return slot

    def _current_slot(self, schedule: Schedule, now: datetime) -> datetime:
        """The latest slot at or before ``now`` (the open window), else ``now`` itself."""
        period = schedule.period
        slot = schedule.previous_fire(now, period) if period is not None else None
        return slot if slot is not None else now.replace(microsecond=0)

    async def _run_window(self, slot: datetime, trigger: str) -> None:
        start = window_start(slot, self.options.window, self.options.tz)
        key = window_key(self.name, start)
        message = RunMessage(self.name, key, start, slot, trigger=trigger)
        runner = self._runner
        if runner is None:
            return
        self._stats.run_began(key)
        try:
            report = await runner.run(message, self._max_retries)
        except asyncio.CancelledError:
            self._stats.count("cancelled", "cancelled: scheduler stopping")
            raise
        except Exception as exc:  # a store failure in guarded mode: counted, loop goes on
            log.exception("scheduler %s: window %s could not run", self.name, key)
            self._stats.count("failed", describe_error(exc))
            return
        self._stats.count(report.state, report.error)
        log.info("scheduler %s: %s %s after %d attempt(s)%s", self.name, key, report.state,
                 report.attempts, f": {report.error}" if report.error else "")
