"""Prefork children as pure executors: the main process runs the guard, a child runs the agent.

With ``AGENTCRON_SYNC_CLAIM=main`` (:mod:`workers.claims`) a prefork worker's main process runs
each sync window through the same guard flow as the asyncio worker: claims, lease acquires,
completions and releases batched across the runs in flight (``AsyncMode``), leases renewed by its
lease hub. Only the agent call crosses to a child: :class:`ChildMode` sends each attempt to the
pool (``pool.apply_async`` on the consumer's loop, as Celery's own requests are sent) and awaits
what :func:`run_in_child` returns. A child holds no slot between attempts (the backoff waits in
the main process), and holds nothing of the guard: no lease, no database connection of the run.

In the child the agent runs on its main thread under the job's timeout (``SIGALRM``, as in a
sync run), with a run context of its own: its reports, usage and ``ctx.log`` lines come back with
the result and are merged into the main process's context, which records them as usual. A
cancellation (a lost lease, ``cancel_other``, a hard budget) sets ``ctx.cancel_requested`` in
the child: the main process marks the attempt in a shared page and sends ``SIGUSR2``; the child
honours the signal only for the attempt marked (a signal that arrives after the attempt ended
finds another number there). A child that dies mid-attempt fails that attempt
(:class:`~agentcron.guard.modes.WorkerLost`): it is retried within the window like any failure,
and a run whose last attempt ended so is recorded ``worker lost N times``, as a window
redelivered after its workers were lost is on the default path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import mmap
import os
import pickle
import signal
import struct
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billiard.exceptions import WorkerLostError
from sqlalchemy.exc import OperationalError

from agentcron.agents import Agent
from agentcron.context import RunCancelled, RunContext
from agentcron.errors import ConfigError
from agentcron.guard.modes import AsyncMode, RunTimedOut, WorkerLost, call_agent
from agentcron.jobs import JobSpec
from agentcron.limits.gate import RunLimits
from agentcron.reports.content import PendingReport
from agentcron.runlog import captured_lines
from agentcron.runtime import Runtime, SpecLoader, dynamic_specs, file_specs
from agentcron.secrets import resolve_config, scrub
from agentcron.settings import read_environment
from agentcron.spend.usage import ModelUsage

log = logging.getLogger("agentcron.children")
CANCEL_SIGNAL = signal.SIGUSR2
_SLOTS = 4096
_PAGE: list[mmap.mmap] = []


def cancel_page_path(main_pid: int) -> str:
    """The shared page where the main process ``main_pid`` marks the attempts to cancel (a
    file in ``/dev/shm`` when there is one: children are spawned, not forked, so nothing is
    inherited; see :mod:`workers.claims`)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"agentcron-cancels-{main_pid}")


def open_cancel_page(main_pid: int, create: bool) -> mmap.mmap | None:
    """The page of ``main_pid`` (made, zeroed, by the main process; opened by a child)."""
    if _PAGE:
        return _PAGE[0]
    path = cancel_page_path(main_pid)
    try:
        if create:
            with open(path, "wb") as out:
                out.write(bytes(8 * _SLOTS))
        with open(path, "r+b") as shared:
            page = mmap.mmap(shared.fileno(), 8 * _SLOTS)
    except OSError:
        return None
    _PAGE.append(page)
    return page


def remove_cancel_page() -> None:
    """The main process at shutdown: the page goes with it."""
    with contextlib.suppress(OSError):
        os.unlink(cancel_page_path(os.getpid()))


def _mark_cancel(call_id: int) -> None:
    page = open_cancel_page(os.getpid(), create=True)
    if page is not None:
        struct.pack_into("q", page, 8 * (call_id % _SLOTS), call_id)


def _cancel_marked(call_id: int) -> bool:
    page = open_cancel_page(os.getppid(), create=False)  # in a child: its main process's page
    return page is not None and struct.unpack_from("q", page, 8 * (call_id % _SLOTS))[0] == call_id


@dataclass(frozen=True, slots=True)
class ChildCall:
    """One attempt, as a child receives it (no secret: the child resolves the config)."""

    call_id: int
    job: str
    window_key: str
    window_start: datetime
    slot: datetime
    attempt: int
    trigger: str
    limit: float | None


@dataclass(frozen=True, slots=True)
class ChildResult:
    """What an attempt in a child ended with, and what its context gathered."""

    kind: str  # "ok" | "error" | "timeout" | "cancelled" | "config"
    result: Any = None
    error_type: str = ""
    error: str = ""
    reports: tuple[PendingReport, ...] = ()
    usage: dict[str, ModelUsage] = field(default_factory=dict)
    lines: tuple[str, ...] = ()


_CURRENT: list[tuple[int, RunContext] | None] = [None]


def executor_loaders() -> tuple[SpecLoader, ...]:
    """A child's spec loaders: the schedule file's, then the ledger's table unless the database
    is down (the main process has claimed the run; the child only needs its agent and config,
    and a file job's attempt must not fail on a ledger outage)."""

    def table_unless_down(runtime: Runtime) -> list[JobSpec]:
        try:
            return dynamic_specs(runtime)
        except OperationalError as exc:
            log.warning("the ledger's jobs were not read (%s); the schedule file's are used",
                        type(exc).__name__)  # fmt: skip
            return []

    return (file_specs, table_unless_down)


def _on_cancel_signal(signum: int, frame: Any) -> None:
    current = _CURRENT[0]
    if current is not None and _cancel_marked(current[0]):
        current[1].request_cancel("cancelled by the worker's main process")


def run_in_child(call: ChildCall) -> ChildResult:
    """Run one attempt of ``call.job``'s agent in this prefork child (its main thread)."""
    from workers.tasks import worker_runtime

    runtime = worker_runtime()
    spec = runtime.spec(call.job)
    try:
        config = resolve_config(spec.job.config, read_environment, spec.name)
    except ConfigError as exc:
        return ChildResult("config", error_type="ConfigError", error=str(exc))
    ctx = RunContext(job=spec.name, task=spec.job.task, config=config,
                     window_key=call.window_key, window_start=call.window_start,
                     slot=call.slot, attempt=call.attempt, trigger=call.trigger)  # fmt: skip
    ctx.meter_factory = runtime.guard.spend.meter_for(ctx, None)  # the budget: the main's
    if spec.declared_limits:
        ctx.limits = RunLimits(runtime.guard.limits, spec.declared_limits)
    previous = signal.signal(CANCEL_SIGNAL, _on_cancel_signal)
    _CURRENT[0] = (call.call_id, ctx)
    try:
        if _cancel_marked(call.call_id):  # asked to stop before it started
            ctx.request_cancel("cancelled by the worker's main process")
        ended = _attempt(spec.agent, ctx, call.limit, runtime.guard.timeout_errors)
    finally:
        _CURRENT[0] = None
        signal.signal(CANCEL_SIGNAL, previous)
    meter = ctx.__dict__.get("meter")
    usage = dict(meter.by_model) if meter is not None else {}
    return ChildResult(ended.kind, ended.result, ended.error_type, ended.error, ctx.reports,
                       usage, tuple(captured_lines(ctx)))  # fmt: skip


def _attempt(agent: Agent, ctx: RunContext, limit: float | None,
             timeout_errors: tuple[type[BaseException], ...]) -> ChildResult:  # fmt: skip
    try:
        result = call_agent(agent, ctx, limit, timeout_errors)
    except RunTimedOut as exc:
        return ChildResult("timeout", error=str(exc))
    except RunCancelled as exc:
        return ChildResult("cancelled", error_type=type(exc).__name__, error=str(exc))
    except Exception as exc:
        log.warning("%s attempt %d failed: %s: %s", ctx.window_key, ctx.attempt,
                    type(exc).__name__, scrub(str(exc)))  # fmt: skip
        return ChildResult("error", error_type=type(exc).__name__, error=str(exc))
    try:
        pickle.dumps(result)
    except Exception as exc:  # it must cross the pipe: the attempt fails as a bad result
        return ChildResult(
            "error",
            error_type="ResultError",
            error=f"the result cannot be sent ({type(exc).__name__}: {exc})",
        )
    return ChildResult("ok", result)


_FAILURES: dict[str, type[Exception]] = {}


def agent_failure(name: str, text: str) -> Exception:
    """An exception named as the agent's was (the guard records ``Name: text``)."""
    cls = _FAILURES.get(name)
    if cls is None:
        if len(_FAILURES) > 256:
            _FAILURES.clear()
        cls = _FAILURES[name] = type(name if name.isidentifier() else "AgentError",
                                     (Exception,), {"__module__": "agent"})  # fmt: skip
    return cls(text)


class _InChild:
    __slots__ = ("call_id", "cancelled", "ended", "pid", "terminated")

    def __init__(self, call_id: int) -> None:
        self.call_id, self.pid, self.cancelled = call_id, 0, False
        self.terminated = self.ended = False


class ChildMode(AsyncMode):
    """The async mode whose agent calls run in a prefork pool's children."""

    name = "child"

    def __init__(self, pool: Any, call_soon: Callable[..., Any],
                 stopping: Callable[[], bool] = lambda: False,
                 after_result: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        super().__init__()
        self.pool = pool
        self.call_soon = call_soon  # the consumer loop's (kombu's hub): the pool is its
        self.stopping = stopping  # the worker is shutting down: no attempt is started
        self.after_result = after_result  # called on the consumer's thread after each return
        self._ids = itertools.count(1)
        self._in_child: dict[int, _InChild] = {}
        self._lost: dict[int, tuple[weakref.ref[RunContext], int]] = {}  # run -> children lost

    async def invoke(self, agent: Agent, ctx: RunContext, limit: float | None) -> Any:
        call = ChildCall(next(self._ids), ctx.job, ctx.window_key, ctx.window_start, ctx.slot,
                         ctx.attempt, ctx.trigger, limit)  # fmt: skip
        if self.stopping():  # the run ends here, unrecorded: its message goes back to the queue
            raise asyncio.CancelledError("the worker is shutting down")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ChildResult] = loop.create_future()
        entry = self._in_child[id(ctx)] = _InChild(call.call_id)
        if ctx.cancel_requested:
            self._cancel(entry)

        def resolve(value: Any, error: BaseException | None) -> None:
            if error is not None and self.stopping():  # the pool is closing: not a failure
                error = asyncio.CancelledError("the worker is shutting down")
            loop.call_soon_threadsafe(_resolve, done, value, error)

        self.call_soon(self._apply, call, entry, resolve)
        try:
            ended = await done
        except asyncio.CancelledError:  # a shutdown or Celery's cancel: the attempt is stopped
            self._cancel(entry)
            self._terminate(entry)
            raise
        except WorkerLostError as exc:
            raise WorkerLost(self._count_lost(ctx)) from exc
        finally:
            self._in_child.pop(id(ctx), None)
        return _merged(ctx, ended)

    def _count_lost(self, ctx: RunContext) -> int:
        """How many of ``ctx``'s run's attempts lost their child, this one included."""
        key = id(ctx)
        ref, times = self._lost.get(key, (None, 0))
        if ref is None:  # forgotten with the run's context
            ref = weakref.ref(ctx, lambda _: self._lost.pop(key, None))
        self._lost[key] = (ref, times + 1)
        return times + 1

    def _apply(self, call: ChildCall, entry: _InChild,
               resolve: Callable[[Any, BaseException | None], None]) -> None:  # fmt: skip
        """On the consumer's loop: hand the attempt to the pool."""

        def accepted(pid: int, *_: Any) -> None:
            entry.pid = pid
            if entry.terminated:
                self._terminate(entry)
            elif entry.cancelled:
                _signal(pid)

        def failed(info: Any) -> None:  # billiard's ExceptionInfo, around ExceptionWithTraceback
            entry.ended = True
            error = getattr(info, "exception", None) or RuntimeError(repr(info))
            resolve(None, getattr(error, "exc", error))
            if not entry.terminated:  # a terminated attempt's run was cancelled: no record
                self.after_result()

        def returned(value: Any) -> None:
            entry.ended = True
            resolve(value, None)
            self.after_result()

        try:
            self.pool.apply_async(run_in_child, args=(call,), callback=returned,
                                  error_callback=failed, accept_callback=accepted,
                                  soft_timeout=None, timeout=None)  # fmt: skip
        except Exception as exc:
            resolve(None, exc)

    def interrupt(self, ctx: RunContext, reason: str) -> None:
        ctx.request_cancel(reason)
        entry = self._in_child.get(id(ctx))
        if entry is not None:
            self._cancel(entry)

    def _terminate(self, entry: _InChild) -> None:
        """Stop the attempt's child (``SIGTERM``, as Celery terminates a task's child); the
        pool replaces it. Once the attempt has returned, its child runs another: left alone."""
        entry.terminated = True
        if entry.pid and not entry.ended:
            with contextlib.suppress(Exception):
                self.pool.terminate_job(entry.pid, signal.SIGTERM)

    @staticmethod
    def _cancel(entry: _InChild) -> None:
        entry.cancelled = True
        _mark_cancel(entry.call_id)
        if entry.pid:
            _signal(entry.pid)


def _signal(pid: int) -> None:
    with contextlib.suppress(OSError):  # the child is gone: its attempt ends as a lost worker
        os.kill(pid, CANCEL_SIGNAL)


def _resolve(done: asyncio.Future[ChildResult], value: Any,
             error: BaseException | None) -> None:  # fmt: skip
    if done.done():
        return
    if isinstance(error, asyncio.CancelledError):
        done.cancel()
    elif error is not None:
        done.set_exception(error)
    elif not isinstance(value, ChildResult):
        done.set_exception(RuntimeError(f"a child returned {type(value).__name__}"))
    else:
        done.set_result(value)


def _merged(ctx: RunContext, ended: ChildResult) -> Any:
    """Take what the child's context gathered into ``ctx``; the attempt's result, or raise."""
    for report in ended.reports:
        ctx._reports.append(report)
    for line in ended.lines:
        ctx.log.buffer.add(line)  # type: ignore[attr-defined]
    if ended.usage:
        ctx.meter.merge(ended.usage)  # may raise BudgetExceeded: a hard budget is spent
    if ended.kind == "ok":
        return ended.result
    if ended.kind == "timeout":
        raise RunTimedOut(ended.error)
    if ended.kind == "cancelled":
        raise RunCancelled(ctx.cancel_reason or ended.error or "cancelled")
    if ended.kind == "config":
        raise ConfigError(ended.error)
    raise agent_failure(ended.error_type, ended.error)
