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
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta

from agentcron.clock import Clock
from agentcron.guard.attempts import Attempts
from agentcron.guard.modes import AsyncMode, Mode, SyncMode
from agentcron.guard.outcome import STATE_COUNTER, Outcome, RunReport, duplicate
from agentcron.guard.overlap import Duplicate, OverlapWait, Skip, acquire_with_policy, lease_owner
from agentcron.guard.release import release_all, release_quietly
from agentcron.guard.stale import end_stale_run
from agentcron.jobs import JobSpec
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.cancel import CancelSignals
from agentcron.leases.hub import LeaseHub
from agentcron.ledger.records import ACTIVE_STATES, ClaimRequest, ClaimStatus, NewWindow, RunRecord, RunState
from agentcron.ledger.store import Ledger
from agentcron.limits.run import hold_run_limits, open_limit_gate, release_run_limits, requeue_delay
from agentcron.messages import RunMessage
from agentcron.misfire import lateness, misfire_reason
from agentcron.settings import Settings
from agentcron.spend.budgets import Spent
from agentcron.spend.gate import open_gate
from agentcron.stats import RunStats

__all__ = ["Guard", "Outcome", "RunReport"]

log = logging.getLogger("agentcron.guard")
_MISFIRE_TRIGGERS = ("schedule", "catchup", "watchdog")


class Guard(Attempts):
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
        self.timeout_errors = timeout_errors  # what counts as the job's timeout in an agent
        self._sync_mode = SyncMode(timeout_errors)
        self._async_mode = AsyncMode()
        self._loops = threading.local()
        self.hub = LeaseHub(leases, cancels, clock)
        self.spend = open_gate(ledger.engine, clock, settings.prices)  # budgets, usage records
        self.limits = open_limit_gate(settings, ledger.engine, clock)  # fleet-wide limits
        self.observers: list[Callable[[Outcome, JobSpec, RunMessage], None]] = []  # metrics, alerts
        self.defer_settlement = False  # True in prefork children: the main process settles

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

    async def run_in(self, spec: JobSpec, message: RunMessage, mode: Mode) -> Outcome:
        """Run a window on the running event loop through another ``mode`` (a prefork worker's
        main process, whose mode hands each attempt to a child: ``workers.children``)."""
        return await self._run(spec, message, mode)

    async def _run(self, spec: JobSpec, message: RunMessage, mode: Mode) -> Outcome:
        window = NewWindow(message.job, message.window_start, message.window_key, message.slot,
                           message.trigger)  # fmt: skip
        outcome = await self._guarded(spec, message, window, mode)
        if outcome.pending is None:  # else counted, logged and observed where it is settled
            await self._account(spec, message, outcome, mode)
        return outcome

    async def _account(self, spec: JobSpec, message: RunMessage, outcome: Outcome,
                       mode: Mode) -> None:  # fmt: skip
        self.run_stats.add("duplicates" if outcome.duplicate else "runs")
        if outcome.state is not None and outcome.state in STATE_COUNTER:
            self.run_stats.add(STATE_COUNTER[outcome.state])
        if log.isEnabledFor(logging.INFO):
            log.info("%s: %s", message.short(), outcome.detail)
        for observer in self.observers:  # e.g. agentcron.metrics.RunObserver; never fails a run
            await mode.callback(observer, outcome, spec, message)

    def settle(self, runs: Sequence[tuple[JobSpec, RunMessage, Outcome]]) -> list[Outcome]:
        """Record runs that ended in prefork children (each ``Outcome.pending``): their fenced
        completions in ONE ledger transaction, their leases released in one round trip, then
        statistics, observers and callbacks once per recorded outcome (the worker's main
        process calls this with the runs its children returned; :mod:`workers.settle`)."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._loops, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            self._loops.loop = loop
        return loop.run_until_complete(self._settle(runs, self._sync_mode))

    async def _settle(self, runs: Sequence[tuple[JobSpec, RunMessage, Outcome]],
                      mode: Mode) -> list[Outcome]:  # fmt: skip
        pending = [outcome.pending for _, _, outcome in runs]
        settled = [p for p in pending if p is not None]
        requests = [p.request for p in settled]
        done = iter(await self._commit(mode, self.ledger.complete_many, requests))
        await release_all(mode, self.leases, [p.lease for p in settled])
        outcomes: list[Outcome] = []
        for spec, message, outcome in runs:
            if outcome.pending is not None:
                outcome = await self._recorded(spec, outcome, next(done), mode)
            await self._account(spec, message, outcome, mode)
            outcomes.append(outcome)
        return outcomes

    async def _recorded(self, spec: JobSpec, outcome: Outcome, ok: bool, mode: Mode) -> Outcome:
        """The final outcome of a settled run: recorded (callbacks run), or fenced out."""
        assert outcome.pending is not None
        window, token = outcome.pending.window, outcome.pending.lease.token
        if not ok:
            self.run_stats.add("stale")
            log.warning("%s: completion fenced out (token %d is stale); dropped",
                        window.window_key, token)  # fmt: skip
            return duplicate("completion fenced out: a newer holder owns this window")
        state = outcome.state
        detail = "" if state is None else (
            state.value if outcome.error is None else f"{state.value}: {outcome.error}")
        final = replace(outcome, detail=detail, pending=None)
        await self._callbacks(mode, spec, window, final)
        return final

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
        name = spec.lease_name(window.window_key)
        owner = lease_owner(window)

        async def current() -> RunRecord | None:
            return await self._commit(mode, self.ledger.get, window.job, window.window_start)

        wait = OverlapWait(self.leases, self.cancels, self.clock, mode, spec, window, current,
                           timedelta(seconds=self.settings.visibility_timeout / 2))
        acquired = await acquire_with_policy(wait, name, owner)
        del wait, current  # not needed while the run goes on
        if isinstance(acquired, Duplicate):
            return duplicate(acquired.detail)
        if isinstance(acquired, Skip):
            return await self._terminal(mode, spec, window, RunState.SKIPPED, acquired.reason)
        outcome: Outcome | None = None
        try:
            spent, refused = (await self._commit(mode, self.spend.check, spec, window.window_start)
                              if spec.budget is not None else (None, None))  # fmt: skip
            if refused is not None:
                outcome = await self._terminal(mode, spec, window, RunState.SKIPPED, refused)
            else:
                outcome = await self._claimed(spec, message, window, mode, acquired, spent)
            return outcome
        finally:
            if outcome is None or outcome.pending is None:  # a pending run's lease: settle()
                await release_quietly(mode, self.leases, acquired, window.window_key)

    async def _terminal(
        self, mode: Mode, spec: JobSpec, window: NewWindow, state: RunState, reason: str
    ) -> Outcome:
        written = await self._commit(mode, self.ledger.mark_terminal, window, state, reason)
        if not written:  # an active row: is its run alive? (a killed holder leaves it active)
            name = spec.lease_name(window.window_key)
            written = await end_stale_run(self._commit, mode, self.ledger, self.leases, window,
                                          name, state, reason, self.worker_id,
                                          spec.job.max_retries)  # fmt: skip
        if not written:
            return duplicate(f"window already recorded; not marking {state.value}")
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
            return duplicate(f"window already {claim.record.state.value}", claim.record)
        if claim.status is ClaimStatus.ACTIVE:
            return duplicate("window running under a newer token", claim.record)
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


def _overran(before: RunRecord | None, spec: JobSpec, clock: Clock) -> bool:
    """Whether the previous holder was killed by its hard time limit (it ran past the timeout)."""
    if before is None or spec.timeout is None or before.state not in ACTIVE_STATES:
        return False
    if before.state is not RunState.RUNNING or before.started_at is None:
        return False
    return clock.now() >= before.started_at + spec.timeout + timedelta(seconds=1)
