"""The claimed part of a run: attempts with renewal and retries, fenced completion, callbacks.

The attempts and the backoff between them are the shared :func:`agentcron.runloop.attempt_loop`
(the in-process schedulers' too); a retry is recorded in the ledger first, fenced by the token.

:class:`Attempts` is the half of :class:`agentcron.guard.run.Guard` that runs once the window is
claimed under its lease; the stores and settings it uses are the guard's own.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from agentcron.backoff import backoff_delay
from agentcron.clock import Clock
from agentcron.context import RunCancelled, RunContext
from agentcron.errors import ConfigError
from agentcron.guard.modes import Mode, RunTimedOut, WorkerLost
from agentcron.guard.outcome import Outcome, RunReport, Settlement, duplicate
from agentcron.jobs import JobSpec
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.hub import Holding, LeaseHub
from agentcron.leases.reacquire import Reacquire
from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.retoken import retoken
from agentcron.ledger.store import Ledger, ResultError
from agentcron.limits.gate import LimitGate, RunLimits
from agentcron.limits.run import stop_on_lost_slot
from agentcron.messages import RunMessage
from agentcron.reports.content import PendingReport
from agentcron.runlog import captured_lines, keep_run_log
from agentcron.runloop import Backoff, Ended, attempt_loop
from agentcron.secrets import resolve_config, scrub, scrub_value
from agentcron.settings import Settings, read_environment
from agentcron.spend.budgets import Spent
from agentcron.spend.gate import BudgetGate
from agentcron.stats import RunStats

log = logging.getLogger("agentcron.guard")
T = TypeVar("T")


class Attempts:
    """Attempts, completion and callbacks of a claimed window (a base of ``Guard``)."""

    ledger: Ledger
    leases: LeaseStore
    clock: Clock
    settings: Settings
    rng: random.Random
    run_stats: RunStats
    hub: LeaseHub
    spend: BudgetGate
    limits: LimitGate
    defer_settlement: bool
    _sync_mode: Mode

    async def _attempts(
        self, spec: JobSpec, message: RunMessage, window: NewWindow, mode: Mode,
        lease: Lease, attempt: int, spent: Spent | None = None,
    ) -> Outcome:  # fmt: skip
        started_at = self.clock.now()
        try:  # env:NAME values are read here, in the worker, right before the agent runs
            config = resolve_config(spec.job.config, read_environment, spec.name)
        except ConfigError as exc:
            return await self._finish(mode, spec, window, lease, attempt, RunState.FAILED, None,
                                      str(exc), "ConfigError")  # fmt: skip
        ctx = RunContext(job=spec.name, task=spec.job.task, config=config,
                         window_key=window.window_key, window_start=window.window_start,
                         slot=window.slot, attempt=attempt, trigger=window.trigger)  # fmt: skip
        ctx.meter_factory = self.spend.meter_for(ctx, spent)
        if spec.declared_limits:
            ctx.limits = RunLimits(self.limits, spec.declared_limits)
        timeout = spec.timeout.total_seconds() if spec.timeout else None
        started = self.clock.monotonic()

        def stop(reason: str) -> None:
            mode.interrupt(ctx, reason)

        async def finish(state: RunState, result: Any, error: str | None,
                         error_type: str | None) -> Outcome:  # fmt: skip
            took = self.clock.monotonic() - started
            self.run_stats.observe(took)
            await self._keep_usage(mode, spec, ctx, spent)
            if captured_lines(ctx):  # what the agent logged through ctx.log, kept with the run
                await mode.io(keep_run_log, self.ledger, ctx, self.clock)
            return await self._finish(mode, spec, window, holding.lease, ctx.attempt, state,
                                      result, error, error_type, took, started_at,
                                      ctx.reports)  # fmt: skip

        ttl = spec.lease_ttl.total_seconds()
        stop_on_lost_slot(stop)  # a limit slot lost mid-run stops it as a lost lease does
        with self.hub.hold(lease, ttl, stop, self._reacquire(window, ttl)) as holding:
            try:  # the first attempt; attempt_loop takes over only if it fails
                ended: Ended[Any] = Ended(attempt, result=await mode.invoke(spec.agent, ctx,
                                                                            timeout))  # fmt: skip
            except Exception as first_failure:
                ended = await self._more_attempts(spec, mode, window, ctx, holding, spent,
                                                  timeout, first_failure)  # fmt: skip
            failure = ended.error
            if failure is None:
                return await finish(RunState.SUCCEEDED, ended.result, None, None)
            if ended.stopped:
                return duplicate("fenced out while retrying (a newer holder took over)")
            if isinstance(failure, RunTimedOut):
                return await finish(RunState.TIMEOUT, None, str(failure), "Timeout")
            if isinstance(failure, RunCancelled):
                return await finish(RunState.CANCELLED, None, str(failure), "Cancelled")
            if isinstance(failure, WorkerLost):  # recorded as a window redelivered after losses
                return await finish(RunState.FAILED, None, str(failure), "WorkerLost")
            error = f"{type(failure).__name__}: {failure}"  # the agent's failure, recorded
            return await finish(RunState.FAILED, None, error, type(failure).__name__)

    async def _more_attempts(
        self, spec: JobSpec, mode: Mode, window: NewWindow, ctx: RunContext, holding: Holding,
        spent: Spent | None, limit: float | None, failed: Exception,
    ) -> Ended[Any]:  # fmt: skip
        """After a failed first attempt: the retries, through the one attempt loop."""

        async def invoke(number: int) -> Any:
            ctx.attempt = number
            return await mode.invoke(spec.agent, ctx, limit)

        async def retry(number: int, exc: Exception, delay: float) -> int | None:
            await self._keep_usage(mode, spec, ctx, spent)
            return await self._retry(mode, window, holding.lease, ctx, exc, delay)

        return await attempt_loop(
            invoke, first=ctx.attempt, max_attempts=spec.job.max_retries,
            backoff=Backoff(spec.backoff_base, spec.backoff_cap, self.rng), retry=retry,
            sleep=self._sleep, final=(RunTimedOut, RunCancelled, ConfigError), failed=failed,
        )  # fmt: skip

    async def _keep_usage(
        self, mode: Mode, spec: JobSpec, ctx: RunContext, spent: Spent | None
    ) -> None:
        """The attempt's usage, written before its completion or retry (when it reported any)."""
        if "meter" in ctx.__dict__:
            await self._commit(mode, self.spend.record, spec, ctx, spent)

    def _reacquire(self, window: NewWindow, ttl: float) -> Reacquire:
        """Take a vanished lease back if the window's row still names this run (hub thread)."""
        def move(old: int, new: int) -> bool:
            return retoken(self.ledger.engine, window.window_key, old, new, self.clock.now())

        return Reacquire(self.leases, ttl, move)

    async def _retry(
        self, mode: Mode, window: NewWindow, lease: Lease, ctx: RunContext, exc: Exception,
        delay: float,
    ) -> int | None:  # fmt: skip
        """Record the failed attempt (fenced by the token); the next attempt's number, or None
        when a newer holder fenced this run out."""
        error = scrub(str(exc)) or ""
        log.warning("%s attempt %d failed (%s: %s); retrying in %.2fs", window.window_key,
                    ctx.attempt, type(exc).__name__, error, delay)  # fmt: skip
        attempt: int | None = await self._commit(
            mode, self.ledger.retry, window.job, window.window_start, lease.token,
            type(exc).__name__, error,
        )
        if attempt is None:
            return None
        ctx.discard_reports()  # only the succeeded attempt's reports are kept
        self.run_stats.add("retries")
        return attempt

    async def _sleep(self, seconds: float) -> bool:
        """The backoff between attempts, on the injected clock (never cut short)."""
        await self.clock.asleep(seconds)
        return True

    async def _finish(
        self, mode: Mode, spec: JobSpec, window: NewWindow, lease: Lease, attempt: int,
        state: RunState, result: Any, error: str | None, error_type: str | None,
        duration: float | None = None, started_at: datetime | None = None,
        reports: tuple[PendingReport, ...] = (),
    ) -> Outcome:  # fmt: skip
        error, result = scrub(error), scrub_value(result)  # no resolved secret is stored or sent
        try:
            request = self.ledger.complete_request(
                window.job, window.window_start, lease.token, state, result=result,
                error_type=error_type, error_message=error, duration=duration, reports=reports,
                deliver=[t.text for t in spec.targets])
        except ResultError as exc:
            state, result, error = RunState.FAILED, None, str(exc)
            request = self.ledger.complete_request(
                window.job, window.window_start, lease.token, state, error_type="ResultError",
                error_message=error, duration=duration)
        if self.defer_settlement and mode is self._sync_mode:  # the main process settles it
            settlement = Settlement(request, lease, window)
            self.run_stats.add("deferred")
            return Outcome(state, False, attempt, result, error, "", duration, started_at,
                           pending=settlement)  # fmt: skip
        ok = await self._retrying(lambda: mode.complete(self.ledger, request))
        if not ok:
            self.run_stats.add("stale")
            log.warning("%s: completion fenced out (token %d is stale); dropped",
                        window.window_key, lease.token)  # fmt: skip
            return duplicate("completion fenced out: a newer holder owns this window")
        detail = state.value if error is None else f"{state.value}: {error}"
        outcome = Outcome(state, False, attempt, result, error, detail, duration, started_at)
        await self._callbacks(mode, spec, window, outcome)
        return outcome

    async def _callbacks(
        self, mode: Mode, spec: JobSpec, window: NewWindow, outcome: Outcome
    ) -> None:
        if outcome.state is None:
            return
        callback = spec.on_success if outcome.state is RunState.SUCCEEDED else spec.on_failure
        if callback is None:
            return
        report = RunReport(spec.name, window.window_key, window.slot.isoformat(),
                           outcome.state.value, outcome.attempts, outcome.result,
                           outcome.error)  # fmt: skip
        await mode.callback(callback, report)

    async def _commit(self, mode: Mode, fn: Callable[..., T], *args: Any) -> T:
        """A blocking ledger call, retried with backoff while the database is unreachable."""
        return await self._retrying(lambda: mode.io(fn, *args))

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` again with backoff while the database is unreachable."""
        from sqlalchemy.exc import DBAPIError, OperationalError

        attempt = 0
        deadline = self.clock.monotonic() + self.settings.visibility_timeout / 2
        while True:
            try:
                return await call()
            except (OperationalError, DBAPIError) as exc:
                transient = isinstance(exc, OperationalError) or exc.connection_invalidated
                if not transient:
                    raise
                attempt += 1
                if self.clock.monotonic() > deadline:
                    raise
                delay = backoff_delay(attempt, 0.2, 5.0, self.rng)
                log.warning("ledger unavailable (%s); retrying in %.2fs", type(exc).__name__,
                            delay)  # fmt: skip
                await self.clock.asleep(delay)

