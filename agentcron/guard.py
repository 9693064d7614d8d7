"""The guard around every run: exactly one success per window.

claim the window (ledger) -> apply the job's overlap policy (lease per job) -> run with lease
renewal every TTL/3 and in-process retries -> fenced completion -> release (compare-and-delete)
-> callbacks, once per window outcome. A job's fleet-wide limits are held around all of that
(re-queued after ``limit_wait``: agentcron.limits.run); its budget is checked under the overlap
lease, before the claim, and each attempt's LLM usage is written before its completion
(agentcron.spend.gate).

The SQL ledger is the authority (``UNIQUE(job, window_start)``, fenced ``UPDATE ... WHERE token``);
the lease only saves duplicate work. A stale holder (paused, its lease taken over) finds its
completion refused and drops it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from agentcron.backoff import backoff_delay
from agentcron.clock import Clock
from agentcron.context import RunCancelled, RunContext
from agentcron.errors import ConfigError
from agentcron.guard_modes import AsyncMode, Mode, RunTimedOut, SyncMode
from agentcron.guard_overlap import Duplicate, OverlapWait, Skip, acquire_with_policy, lease_owner
from agentcron.guard_release import release_quietly
from agentcron.guard_stale import end_stale_run
from agentcron.jobs import JobSpec
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.cancel import CancelSignals
from agentcron.leases.hub import LeaseHub
from agentcron.leases.reacquire import Reacquire
from agentcron.ledger.records import (
    ACTIVE_STATES,
    ClaimRequest,
    ClaimStatus,
    NewWindow,
    RunRecord,
    RunState,
)
from agentcron.ledger.retoken import retoken
from agentcron.ledger.store import Ledger, ResultError
from agentcron.limits.gate import RunLimits
from agentcron.limits.run import (
    hold_run_limits,
    open_limit_gate,
    release_run_limits,
    requeue_delay,
    stop_on_lost_slot,
)
from agentcron.messages import RunMessage
from agentcron.misfire import lateness, misfire_reason
from agentcron.reports.content import PendingReport
from agentcron.runlog import captured_lines, keep_run_log
from agentcron.secrets import resolve_config, scrub, scrub_value
from agentcron.settings import Settings, read_environment
from agentcron.spend.budgets import Spent
from agentcron.spend.gate import open_gate
from agentcron.stats import RunStats

log = logging.getLogger("agentcron.guard")
T = TypeVar("T")
_MISFIRE_TRIGGERS = ("schedule", "catchup", "watchdog")
_STATE_COUNTER = {
    RunState.SUCCEEDED: "successes", RunState.FAILED: "failures", RunState.SKIPPED: "skipped",
    RunState.MISSED: "missed", RunState.CANCELLED: "cancelled", RunState.TIMEOUT: "timeouts",
}  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What one delivery of a run message did."""

    state: RunState | None
    duplicate: bool
    attempts: int
    result: Any
    error: str | None
    detail: str
    duration: float | None = None
    started_at: datetime | None = None
    requeue_after: float | None = None  # waited in vain for a fleet-wide limit: publish again


@dataclass(frozen=True)
class RunReport:
    """What ``on_success`` / ``on_failure`` callbacks receive."""

    job: str
    window_key: str
    slot: str
    state: str
    attempts: int
    result: Any
    error: str | None


def _duplicate(detail: str, record: RunRecord | None = None) -> Outcome:
    return Outcome(None, True, record.attempt if record else 0, None, None, f"duplicate: {detail}")


class Guard:
    """Runs one window of one job, sync or async, under the window and overlap guarantees."""

    def __init__(
        self,
        ledger: Ledger,
        leases: LeaseStore,
        cancels: CancelSignals,
        clock: Clock,
        *,
        worker_id: str,
        settings: Settings,
        rng: random.Random | None = None,
        timeout_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.ledger = ledger
        self.leases = leases
        self.cancels = cancels
        self.clock = clock
        self.worker_id = worker_id
        self.settings = settings
        self.rng = rng or random.Random()
        self.run_stats = RunStats()
        self._sync_mode = SyncMode(timeout_errors)
        self._async_mode = AsyncMode()
        self._loops = threading.local()
        self.hub = LeaseHub(leases, cancels, clock)
        self.spend = open_gate(ledger.engine, clock, settings.prices)  # budgets, usage records
        self.limits = open_limit_gate(settings, ledger.engine, clock)  # fleet-wide limits
        self.observers: list[Callable[[Outcome, JobSpec, RunMessage], None]] = []  # metrics, alerts

    def stats(self) -> dict[str, float]:
        """Counters and durations since this guard was made."""
        return self.run_stats.snapshot()

    def run_sync(self, spec: JobSpec, message: RunMessage) -> Outcome:
        """Run a window in this thread (blocking)."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._loops, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            self._loops.loop = loop
        return loop.run_until_complete(self._run(spec, message, self._sync_mode))

    async def run_async(self, spec: JobSpec, message: RunMessage) -> Outcome:
        """Run a window on the running event loop."""
        return await self._run(spec, message, self._async_mode)

    async def _run(self, spec: JobSpec, message: RunMessage, mode: Mode) -> Outcome:
        window = NewWindow(message.job, message.window_start, message.window_key, message.slot,
                           message.trigger)  # fmt: skip
        outcome = await self._guarded(spec, message, window, mode)
        self.run_stats.add("duplicates" if outcome.duplicate else "runs")
        if outcome.state is not None and outcome.state in _STATE_COUNTER:
            self.run_stats.add(_STATE_COUNTER[outcome.state])
        if log.isEnabledFor(logging.INFO):
            log.info("%s: %s", message.short(), outcome.detail)
        for observer in self.observers:  # e.g. agentcron.metrics.RunObserver; never fails a run
            await mode.callback(observer, outcome, spec, message)
        return outcome

    async def _guarded(
        self, spec: JobSpec, message: RunMessage, window: NewWindow, mode: Mode
    ) -> Outcome:
        now = self.clock.now()
        if (not message.force and message.trigger in _MISFIRE_TRIGGERS
                and now > window.slot + spec.misfire_grace):  # fmt: skip
            row = await self._commit(mode, self.ledger.get, window.job, window.window_start)
            reason = misfire_reason(lateness(window.slot, row, now), spec.misfire_grace)
            if reason is not None:  # emitted late by the scheduler (agentcron.misfire)
                return await self._terminal(mode, spec, window, RunState.MISSED, reason)
        if not spec.limits:
            return await self._leased(spec, message, window, mode)
        held = await hold_run_limits(self.limits, spec, window.window_key)
        if held is None:
            delay = requeue_delay(self.limits, self.rng)
            return Outcome(None, False, 0, None, None, f"requeued in {delay:g}s: limits "
                           f"{', '.join(spec.limits)} busy for {self.limits.wait:g}s",
                           requeue_after=delay)  # fmt: skip
        try:
            return await self._leased(spec, message, window, mode)
        finally:
            await release_run_limits(self.limits, held)

    async def _leased(
        self, spec: JobSpec, message: RunMessage, window: NewWindow, mode: Mode
    ) -> Outcome:
        name = window.window_key if spec.job.overlap == "allow" else spec.name
        owner = lease_owner(window)

        async def current() -> RunRecord | None:
            return await self._commit(mode, self.ledger.get, window.job, window.window_start)

        wait = OverlapWait(self.leases, self.cancels, self.clock, mode, spec, window, current,
                           timedelta(seconds=self.settings.visibility_timeout / 2))
        acquired = await acquire_with_policy(wait, name, owner)
        del wait, current  # not needed while the run goes on
        if isinstance(acquired, Duplicate):
            return _duplicate(acquired.detail)
        if isinstance(acquired, Skip):
            return await self._terminal(mode, spec, window, RunState.SKIPPED, acquired.reason)
        try:
            spent, refused = (await self._commit(mode, self.spend.check, spec, window.window_start)
                              if spec.budget is not None else (None, None))  # fmt: skip
            if refused is not None:
                return await self._terminal(mode, spec, window, RunState.SKIPPED, refused)
            return await self._claimed(spec, message, window, mode, acquired, spent)
        finally:
            await release_quietly(mode, self.leases, acquired, window.window_key)

    async def _terminal(
        self, mode: Mode, spec: JobSpec, window: NewWindow, state: RunState, reason: str
    ) -> Outcome:
        written = await self._commit(mode, self.ledger.mark_terminal, window, state, reason)
        if not written:  # an active row: is its run alive? (a killed holder leaves it active)
            name = window.window_key if spec.job.overlap == "allow" else spec.name
            written = await end_stale_run(self._commit, mode, self.ledger, self.leases, window,
                                          name, state, reason, self.worker_id,
                                          spec.job.max_retries)  # fmt: skip
        if not written:
            return _duplicate(f"window already recorded; not marking {state.value}")
        outcome = Outcome(state, False, 0, None, reason, f"{state.value}: {reason}")
        await self._callbacks(mode, spec, window, outcome)
        return outcome

    async def _claimed(
        self, spec: JobSpec, message: RunMessage, window: NewWindow, mode: Mode,
        lease: Lease, spent: Spent | None = None,
    ) -> Outcome:  # fmt: skip
        max_attempts = spec.job.max_retries
        request = ClaimRequest(window, lease.token, self.worker_id, max_attempts, message.force,
                               running=True)  # fmt: skip
        claim = await self._retrying(lambda: mode.claim(self.ledger, request))
        if claim.status is ClaimStatus.DONE:
            return _duplicate(f"window already {claim.record.state.value}", claim.record)
        if claim.status is ClaimStatus.ACTIVE:
            return _duplicate("window running under a newer token", claim.record)
        if claim.status is ClaimStatus.EXHAUSTED:
            error = claim.record.error_message or "attempts exhausted"
            outcome = Outcome(RunState.FAILED, False, claim.record.attempt, None, error,
                              f"failed: {error}")  # fmt: skip
            await self._callbacks(mode, spec, window, outcome)
            return outcome
        if _overran(claim.previous, spec, self.clock):
            return await self._finish(mode, spec, window, lease, claim.record.attempt,
                                      RunState.TIMEOUT, None, "hard time limit exceeded",
                                      "TimeLimitExceeded")  # fmt: skip
        attempt = claim.record.attempt
        del claim  # its two ledger rows need not live as long as the run
        return await self._attempts(spec, message, window, mode, lease, attempt, spent)

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
            while True:
                try:
                    result = await mode.invoke(spec.agent, ctx, timeout)
                except RunTimedOut as exc:
                    return await finish(RunState.TIMEOUT, None, str(exc), "Timeout")
                except RunCancelled as exc:
                    return await finish(RunState.CANCELLED, None, str(exc), "Cancelled")
                except Exception as exc:  # the agent's failure, recorded
                    if isinstance(exc, ConfigError) or ctx.attempt >= spec.job.max_retries:
                        error = f"{type(exc).__name__}: {exc}"
                        return await finish(RunState.FAILED, None, error, type(exc).__name__)
                    await self._keep_usage(mode, spec, ctx, spent)
                    if await self._retry(mode, spec, window, holding.lease, ctx, exc) is None:
                        return _duplicate("fenced out while retrying (a newer holder took over)")
                    continue
                return await finish(RunState.SUCCEEDED, result, None, None)

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
        self, mode: Mode, spec: JobSpec, window: NewWindow, lease: Lease, ctx: RunContext,
        exc: Exception,
    ) -> int | None:  # fmt: skip
        delay = backoff_delay(ctx.attempt, spec.backoff_base, spec.backoff_cap, self.rng)
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
        await self.clock.asleep(delay)
        ctx.attempt = attempt
        return attempt

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
        ok = await self._retrying(lambda: mode.complete(self.ledger, request))
        if not ok:
            self.run_stats.add("stale")
            log.warning("%s: completion fenced out (token %d is stale); dropped",
                        window.window_key, lease.token)  # fmt: skip
            return _duplicate("completion fenced out: a newer holder owns this window")
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


def _overran(before: RunRecord | None, spec: JobSpec, clock: Clock) -> bool:
    """Whether the previous holder was killed by its hard time limit (it ran past the timeout)."""
    if before is None or spec.timeout is None or before.state not in ACTIVE_STATES:
        return False
    if before.state is not RunState.RUNNING or before.started_at is None:
        return False
    return clock.now() >= before.started_at + spec.timeout + timedelta(seconds=1)
