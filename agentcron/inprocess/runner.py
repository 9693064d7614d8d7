"""Running one window in process: attempts, backoff between them, callbacks.

The attempts and the backoff between them are the shared :func:`agentcron.runloop.attempt_loop`
(the guard's too), and a window's end is the one :class:`~agentcron.runloop.RunReport`.

A runner is the strategy that :class:`~agentcron.inprocess.async_scheduler.AsyncAgentScheduler`
hands each window to: :class:`PlainRunner` here (no ledger), or the guarded runner in
:mod:`agentcron.inprocess.guarded` (ledger + leases, one success per window across processes).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from agentcron.agents import Agent, AgentKind
from agentcron.callbacks import Callback, asafe_call
from agentcron.clock import Clock
from agentcron.context import RunCancelled, RunContext
from agentcron.errors import ConfigError
from agentcron.inprocess.options import SchedulerOptions
from agentcron.messages import RunMessage
from agentcron.runloop import Backoff, RunReport, attempt_loop, describe_error
from agentcron.secrets import resolve_config
from agentcron.settings import read_environment

log = logging.getLogger("agentcron.inprocess")

Sleeper = Callable[[float], Awaitable[bool]]
"""Waits ``seconds`` on the injected clock; False when the scheduler is stopping."""


class WindowRunner(Protocol):
    """Runs one window to its end (all attempts) and reports how it ended."""

    async def run(self, message: RunMessage, max_retries: int) -> RunReport:
        """Run ``message``'s window with up to ``max_retries`` total attempts."""
        ...

    def request_cancel(self, reason: str) -> None:
        """Ask the run in flight, if any, to stop (cooperatively)."""
        ...

    def close(self) -> None:
        """Release threads and connections."""
        ...


@dataclass(frozen=True)
class RunTarget:
    """What a plain runner calls: the agent, its task and config, and the user's callbacks."""

    agent: Agent
    task: str
    config: Mapping[str, Any]
    on_success: Callback | None = None
    on_failure: Callback | None = None


class PlainRunner:
    """Attempts with backoff in this process; no ledger, no leases."""

    def __init__(
        self,
        target: RunTarget,
        clock: Clock,
        options: SchedulerOptions,
        sleep: Sleeper,
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self._clock = clock
        self._options = options
        self._sleep = sleep
        self._rng = rng
        self._pool: ThreadPoolExecutor | None = None
        self.current: RunContext | None = None

    async def run(self, message: RunMessage, max_retries: int) -> RunReport:
        """Up to ``max_retries`` attempts with backoff between them (the shared
        :func:`~agentcron.runloop.attempt_loop`), then callbacks."""
        report = await self._attempts(message, max_retries)
        if report.state == "succeeded":
            await asafe_call(self.target.on_success, report.result)
        elif report.state == "failed":
            await asafe_call(self.target.on_failure, self._last_error)
        return report

    async def _attempts(self, message: RunMessage, max_retries: int) -> RunReport:
        self._last_error: BaseException | None = None

        def report(state: str, attempts: int, result: Any = None, error: str | None = None,
                   detail: str = "") -> RunReport:  # fmt: skip
            return RunReport(message.job, message.window_key, message.slot.isoformat(), state,
                             attempts, result, error, detail)  # fmt: skip

        try:  # env:NAME values are read here, right before the agent runs (as the guard does)
            config = resolve_config(self.target.config, read_environment, message.job)
        except ConfigError as exc:
            self._last_error = exc
            log.warning("%s not run: %s", message.window_key, exc)
            return report("failed", 1, error=str(exc), detail="config")
        if max_retries < 1:
            return report("failed", 0, error="no attempt ran", detail="failed after 0 attempt(s)")

        async def invoke(number: int) -> Any:
            ctx = self._context(message, number, config)
            self.current = ctx
            try:
                result = await self._call(ctx)
            except RunCancelled:
                raise
            except Exception as exc:
                self._last_error = exc
                log.warning("%s attempt %d/%d failed: %s", message.window_key, number,
                            max_retries, describe_error(exc))  # fmt: skip
                raise
            finally:
                self.current = None
            if ctx.reports:  # nowhere to keep them: say so rather than drop them silently
                log.warning("%s: %d report(s) not kept: ctx.report needs a ledger "
                            "(database_url=...)", message.window_key, len(ctx.reports))  # fmt: skip
            return result

        async def retry(number: int, _exc: Exception, _delay: float) -> int:
            return number + 1

        backoff = Backoff(self._options.backoff_base, self._options.backoff_cap, self._rng)
        ended = await attempt_loop(invoke, first=1, max_attempts=max_retries, backoff=backoff,
                                   retry=retry, sleep=self._sleep, final=(RunCancelled,))  # fmt: skip
        if ended.succeeded:
            return report("succeeded", ended.attempt, result=ended.result)
        if isinstance(ended.error, RunCancelled):
            return report("cancelled", ended.attempt, error=describe_error(ended.error))
        error = describe_error(self._last_error) if self._last_error else "no attempt ran"
        return report("failed", ended.attempt, error=error,
                      detail=f"failed after {ended.attempt} attempt(s)")  # fmt: skip

    def _context(self, message: RunMessage, attempt: int,
                 config: Mapping[str, Any]) -> RunContext:  # fmt: skip
        return RunContext(
            job=message.job,
            task=self.target.task,
            config=config,
            window_key=message.window_key,
            window_start=message.window_start,
            slot=message.slot,
            attempt=attempt,
            trigger=message.trigger,
        )

    async def _call(self, ctx: RunContext) -> Any:
        agent = self.target.agent
        if agent.kind is AgentKind.ASYNC:
            call: Awaitable[Any] = agent.call_async(ctx)
        else:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(self._executor(), agent.call_sync, ctx)
        if self._options.timeout is None:
            return await call
        async with asyncio.timeout(self._options.timeout):
            return await call

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="agentcron-agent")
        return self._pool

    def request_cancel(self, reason: str) -> None:
        """Set the cancel flag of the attempt in flight (``ctx.cancel_requested``)."""
        current = self.current
        if current is not None:
            current.request_cancel(reason)

    def close(self) -> None:
        """Shut the agent thread pool down without waiting for an abandoned sync agent."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
