"""The guard around every run: exactly one success per window.

claim the window (ledger) -> apply the job's overlap policy (lease per job) -> run with lease
renewal every TTL/3 and in-process retries -> fenced completion -> release (compare-and-delete)
-> callbacks, once per window outcome.

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
from agentcron.guard_stale import end_stale_run
from agentcron.jobs import JobSpec
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.cancel import CancelSignals
from agentcron.leases.hub import LeaseHub
from agentcron.ledger.records import (
    ACTIVE_STATES,
    ClaimRequest,
    ClaimStatus,
    NewWindow,
    RunRecord,
    RunState,
)
from agentcron.ledger.store import Ledger, ResultError
from agentcron.messages import RunMessage
from agentcron.reports.content import PendingReport
from agentcron.settings import Settings
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
            late = (now - window.slot).total_seconds()
            reason = f"misfire: would start {late:.0f}s after its slot, grace {spec.misfire_grace}"
            return await self._terminal(mode, spec, window, RunState.MISSED, reason)
        name = window.window_key if spec.job.overlap == "allow" else spec.name
        owner = lease_owner(window)

        async def current() -> RunRecord | None:
            return await self._commit(mode, self.ledger.get, window.job, window.window_start)

        wait = OverlapWait(self.leases, self.cancels, self.clock, mode, spec, window, current)
        acquired = await acquire_with_policy(wait, name, owner)
        del wait, current  # not needed while the run goes on
        if isinstance(acquired, Duplicate):
            return _duplicate(acquired.detail)
        if isinstance(acquired, Skip):
            return await self._terminal(mode, spec, window, RunState.SKIPPED, acquired.reason)
        try:
            return await self._claimed(spec, message, window, mode, acquired)
        finally:
            await mode.release(self.leases, acquired)

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
        lease: Lease,
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
        return await self._attempts(spec, message, window, mode, lease, attempt)

    async def _attempts(
        self, spec: JobSpec, message: RunMessage, window: NewWindow, mode: Mode,
        lease: Lease, attempt: int,
    ) -> Outcome:  # fmt: skip
        started_at = self.clock.now()
        ctx = RunContext(job=spec.name, task=spec.job.task, config=dict(spec.job.config),
                         window_key=window.window_key, window_start=window.window_start,
                         slot=window.slot, attempt=attempt, trigger=window.trigger)  # fmt: skip
        timeout = spec.timeout.total_seconds() if spec.timeout else None
        started = self.clock.monotonic()

        def stop(reason: str) -> None:
            mode.interrupt(ctx, reason)

        async def finish(state: RunState, result: Any, error: str | None,
                         error_type: str | None) -> Outcome:  # fmt: skip
            took = self.clock.monotonic() - started
            self.run_stats.observe(took)
            return await self._finish(mode, spec, window, lease, ctx.attempt, state, result,
                                      error, error_type, took, started_at,
                                      ctx.reports)  # fmt: skip

        with self.hub.hold(lease, spec.lease_ttl.total_seconds(), stop):
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
                    if await self._retry(mode, spec, window, lease, ctx, exc) is None:
                        return _duplicate("fenced out while retrying (a newer holder took over)")
                    continue
                return await finish(RunState.SUCCEEDED, result, None, None)

    async def _retry(
        self, mode: Mode, spec: JobSpec, window: NewWindow, lease: Lease, ctx: RunContext,
        exc: Exception,
    ) -> int | None:  # fmt: skip
        delay = backoff_delay(ctx.attempt, spec.backoff_base, spec.backoff_cap, self.rng)
        log.warning("%s attempt %d failed (%s: %s); retrying in %.2fs", window.window_key,
                    ctx.attempt, type(exc).__name__, exc, delay)  # fmt: skip
        attempt: int | None = await self._commit(
            mode, self.ledger.retry, window.job, window.window_start, lease.token,
            type(exc).__name__, str(exc),
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
