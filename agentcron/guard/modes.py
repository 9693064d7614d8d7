"""How the guard talks to stores and agents: the sync and async strategies.

The guard's flow is written once, as a coroutine. A sync run drives it on a private event loop
of its own thread (the prefork child's main thread, so Celery's soft time limit still lands in
the agent), calling stores and the agent directly; an async run drives it on the worker's shared
loop, sending blocking store calls to threads and awaiting the agent under an asyncio timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from agentcron.agents import Agent
from agentcron.batching import PerLoop
from agentcron.callbacks import asafe_call, safe_call
from agentcron.context import RunCancelled, RunContext
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.batcher import LeaseBatcher
from agentcron.ledger.batcher import LedgerBatcher
from agentcron.ledger.records import Claim, ClaimRequest, CompleteRequest
from agentcron.ledger.store import Ledger

T = TypeVar("T")


class RunTimedOut(Exception):
    """The run exceeded its job's timeout."""


class WorkerLost(Exception):
    """The process running an attempt died in it (a prefork child killed mid-attempt); the text
    counts the attempts of the run that ended so, as a redelivered window's record does."""

    def __init__(self, times: int) -> None:
        super().__init__(f"worker lost {times} times")
        self.times = times


class _SyncTimeLimit(BaseException):
    """Raised inside a sync agent by the interval timer (a BaseException, so that an agent's
    ``except Exception`` does not swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_SyncTimeLimit` in this thread after ``seconds`` (main thread only).

    Prefork children and the solo pool run tasks on their main thread; elsewhere (a thread
    pool) no timer is armed and the job's timeout is not enforced by this process.
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())  # fmt: skip
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _SyncTimeLimit()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(seconds or 0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_agent(agent: Agent, ctx: RunContext, limit: float | None,
               timeout_errors: tuple[type[BaseException], ...] = ()) -> Any:  # fmt: skip
    """Run a sync agent in this thread under ``limit`` seconds (:class:`RunTimedOut`)."""
    try:
        with time_limit(limit):
            return agent.call_sync(ctx)
    except _SyncTimeLimit as exc:
        raise RunTimedOut(f"time limit of {limit}s exceeded") from exc
    except timeout_errors as exc:
        raise RunTimedOut(f"time limit of {limit}s exceeded") from exc


class Mode(Protocol):
    """A strategy for running the guard's flow."""

    name: str

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call."""
        ...

    async def acquire(self, leases: LeaseStore, name: str, owner: str, ttl: float) -> Lease | None:
        """Take a lease."""
        ...

    async def release(self, leases: LeaseStore, lease: Lease) -> bool:
        """Give a lease back (compare-and-delete)."""
        ...

    async def claim(self, ledger: Ledger, request: ClaimRequest) -> Claim:
        """Claim a window in the ledger."""
        ...

    async def complete(self, ledger: Ledger, request: CompleteRequest) -> bool:
        """Complete a run in the ledger (fenced)."""
        ...

    async def invoke(self, agent: Agent, ctx: RunContext, limit: float | None) -> Any:
        """Run the agent; raise RunTimedOut or RunCancelled when it is stopped."""
        ...

    def interrupt(self, ctx: RunContext, reason: str) -> None:
        """Ask the running agent to stop (from any thread)."""
        ...

    async def callback(self, callback: Callable[..., Any] | None, *args: Any) -> None:
        """Call a user callback, swallowing its errors."""
        ...


class SyncMode:
    """Blocking calls in the calling thread; the agent runs right here."""

    name = "sync"

    def __init__(self, timeout_errors: tuple[type[BaseException], ...] = ()) -> None:
        self.timeout_errors = timeout_errors

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    async def acquire(self, leases: LeaseStore, name: str, owner: str, ttl: float) -> Lease | None:
        return leases.acquire(name, owner, ttl)

    async def release(self, leases: LeaseStore, lease: Lease) -> bool:
        return leases.release(lease)

    async def claim(self, ledger: Ledger, request: ClaimRequest) -> Claim:
        return ledger.claim_many([request])[0]

    async def complete(self, ledger: Ledger, request: CompleteRequest) -> bool:
        return ledger.complete_many([request])[0]

    async def invoke(self, agent: Agent, ctx: RunContext, limit: float | None) -> Any:
        return call_agent(agent, ctx, limit, self.timeout_errors)

    def interrupt(self, ctx: RunContext, reason: str) -> None:
        ctx.request_cancel(reason)

    async def callback(self, callback: Callable[..., Any] | None, *args: Any) -> None:
        safe_call(callback, *args)


class AsyncMode:
    """Store calls in worker threads; the agent is a task on the running loop."""

    name = "async"

    def __init__(self) -> None:
        self._tasks: dict[int, _Running] = {}
        self._batchers: PerLoop[Ledger, LedgerBatcher] = PerLoop(LedgerBatcher)
        self._lease_batchers: PerLoop[LeaseStore, LeaseBatcher] = PerLoop(LeaseBatcher)

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def batcher(self, ledger: Ledger) -> LedgerBatcher:
        """This loop's batcher of ledger writes."""
        return self._batchers.get(ledger)

    def lease_batcher(self, leases: LeaseStore) -> LeaseBatcher:
        """This loop's batcher of lease acquires and releases."""
        return self._lease_batchers.get(leases)

    async def acquire(self, leases: LeaseStore, name: str, owner: str, ttl: float) -> Lease | None:
        return await self.lease_batcher(leases).acquire(name, owner, ttl)

    async def release(self, leases: LeaseStore, lease: Lease) -> bool:
        return await self.lease_batcher(leases).release(lease)

    async def claim(self, ledger: Ledger, request: ClaimRequest) -> Claim:
        return await self.batcher(ledger).claim(request)

    async def complete(self, ledger: Ledger, request: CompleteRequest) -> bool:
        return await self.batcher(ledger).complete(request)

    async def invoke(self, agent: Agent, ctx: RunContext, limit: float | None) -> Any:
        # The agent runs inside the run's own task (no extra task, shield or waiter per run:
        # ten thousand runs in flight). An interrupt cancels that task while it is in here; the
        # cancellations it made are taken back, so only another canceller's (the pool on a
        # revoke, a time limit or a shutdown) go on as a cancellation.
        running = _Running(asyncio.get_running_loop(), _current_task())
        self._tasks[id(ctx)] = running
        try:
            if limit is None:
                return await agent.call_async(ctx)
            timer = asyncio.timeout(limit)
            try:
                async with timer:
                    return await agent.call_async(ctx)
            except TimeoutError as exc:
                if timer.expired():  # ours; an agent's own TimeoutError is just its failure
                    raise RunTimedOut(f"timeout of {limit}s exceeded") from exc
                raise
        except asyncio.CancelledError:
            for _ in range(running.interrupts):
                running.task.uncancel()
            if running.interrupts and running.task.cancelling() == 0:
                raise RunCancelled(ctx.cancel_reason or "cancelled") from None
            raise
        finally:
            self._tasks.pop(id(ctx), None)

    def interrupt(self, ctx: RunContext, reason: str) -> None:
        ctx.request_cancel(reason)
        running = self._tasks.get(id(ctx))
        if running is not None:
            running.loop.call_soon_threadsafe(self._cancel_if_running, ctx, running)

    def _cancel_if_running(self, ctx: RunContext, running: _Running) -> None:
        """On the loop: cancel the run's task only while it is still inside :meth:`invoke`."""
        if self._tasks.get(id(ctx)) is running and not running.task.done():
            running.interrupts += 1
            running.task.cancel("agentcron: run interrupted")

    async def callback(self, callback: Callable[..., Any] | None, *args: Any) -> None:
        await asafe_call(callback, *args)


class _Running:
    """A run inside :meth:`AsyncMode.invoke`: its task, and how many interrupts cancelled it."""

    __slots__ = ("interrupts", "loop", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        self.loop, self.task, self.interrupts = loop, task, 0


def _current_task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("an async run must be awaited inside an asyncio task")
    return task
