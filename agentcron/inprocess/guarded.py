"""Ledger mode: every in-process window goes through the guard (claim, lease, fenced completion).

Given a ``database_url``, a scheduler builds a private :class:`~agentcron.runtime.Runtime` (no
schedule file) and hands each window to :meth:`Guard.run_async` under the same window key it
would use alone. Two processes running the same schedule under the same name then run each
window once, and the runs show in ``agentcron runs``. The guard does the attempts and backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from typing import TYPE_CHECKING

from agentcron.callbacks import asafe_call
from agentcron.clock import Clock
from agentcron.inprocess.options import SchedulerOptions
from agentcron.inprocess.runner import RunTarget
from agentcron.jobs import Job, JobSpec, compile_job
from agentcron.ledger.records import RunState
from agentcron.messages import RunMessage
from agentcron.runloop import RunReport
from agentcron.settings import Settings

if TYPE_CHECKING:
    from agentcron.runtime import Runtime

log = logging.getLogger("agentcron.inprocess")

_REPORTED = {
    RunState.SUCCEEDED: "succeeded", RunState.FAILED: "failed", RunState.TIMEOUT: "failed",
    RunState.CANCELLED: "cancelled", RunState.MISSED: "missed", RunState.SKIPPED: "duplicate",
}  # fmt: skip


class RunFailed(Exception):
    """What ``on_failure`` receives in ledger mode, where the agent's error is known as text."""


def build_spec(
    name: str, target: RunTarget, options: SchedulerOptions, schedule_expr: str, max_retries: int
) -> JobSpec:
    """The job spec the guard needs, from the scheduler's arguments (ConfigError if invalid)."""
    job = Job(
        name, agent=target.agent.target, schedule=schedule_expr, task=target.task,
        config=dict(target.config), tz=options.tz, window=options.window,
        overlap=options.overlap, max_retries=max_retries, backoff_base=options.backoff_base,
        backoff_cap=options.backoff_cap, timeout=options.timeout, lease_ttl=options.lease_ttl,
        deliver=list(options.deliver),
    )  # fmt: skip
    # The resolved agent keeps its calling convention (an object's run() gets the task text).
    return dataclasses.replace(compile_job(job), agent=target.agent)


class GuardedRunner:
    """A :class:`~agentcron.inprocess.runner.WindowRunner` over the ledger and lease guard."""

    def __init__(self, spec: JobSpec, target: RunTarget, runtime: Runtime) -> None:
        self.spec = spec
        self.target = target
        self.runtime = runtime
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    def open(
        cls, spec: JobSpec, target: RunTarget, clock: Clock, database_url: str,
        rng: random.Random | None = None,
    ) -> GuardedRunner:  # fmt: skip
        """Connect to the ledger (migrating it to the newest schema) and build the guard.

        Blocking: call it in a thread from async code.
        """
        from agentcron.runtime import Runtime

        settings = Settings.from_env(database_url=database_url)
        runtime = Runtime(settings, clock, loaders=())
        runtime.ledger.upgrade()
        if rng is not None:
            runtime.guard.rng = rng
        return cls(spec, target, runtime)

    async def run(self, message: RunMessage, max_retries: int) -> RunReport:
        """Run the window through the guard; the guard retries up to the spec's attempts."""
        if self.spec.targets and self._sender is None:  # the reports' sender, on this loop
            self._sender = asyncio.get_running_loop().create_task(self._send_reports())
        outcome = await self.runtime.guard.run_async(self.spec, message)
        window = (message.job, message.window_key, message.slot.isoformat())
        if outcome.duplicate or outcome.state is None:
            return RunReport(*window, "duplicate", outcome.attempts, detail=outcome.detail)
        state = _REPORTED.get(outcome.state, "failed")
        if state == "succeeded":
            await asafe_call(self.target.on_success, outcome.result)
        elif state == "failed":
            await asafe_call(self.target.on_failure, RunFailed(outcome.error or outcome.detail))
        return RunReport(*window, state, outcome.attempts, outcome.result, outcome.error,
                         outcome.detail)  # fmt: skip

    def request_cancel(self, reason: str) -> None:
        """Nothing to do here: the guard's agent call is cancelled with the scheduler's task."""

    async def _send_reports(self) -> None:
        from agentcron.alerts import safe_alerter
        from agentcron.delivery.sender import Sender, sender_from_settings
        from agentcron.delivery.service import run_sender

        runtime = self.runtime

        def make() -> Sender:
            return sender_from_settings(runtime.settings, runtime.ledger.engine, runtime.clock,
                                        f"{runtime.worker_id}:delivery",
                                        safe_alerter(runtime.settings))  # fmt: skip

        await run_sender(make, runtime.clock, runtime.settings.delivery_interval)

    def close(self) -> None:
        """Stop the sender (if any) and release the ledger's connections."""
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        self.runtime.close()
