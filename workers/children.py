"""Prefork children as pure executors: the main process runs the guard, a child runs the agent.

With ``AGENTCRON_SYNC_CLAIM=main`` (:mod:`workers.claims`) a prefork worker's main process runs
each sync window through the same guard flow as the asyncio worker: claims, lease acquires,
completions and releases batched across the runs in flight (``AsyncMode``), leases renewed by its
lease hub. Only the agent call crosses to a child: :class:`ChildMode` sends each attempt to the
pool (``pool.apply_async`` on the consumer's loop, as Celery's own requests are sent) and awaits
what :func:`workers.in_child.run_in_child` returns. A child holds no slot between attempts (the
backoff waits in the main process), and holds nothing of the guard: no lease, no database
connection of the run.

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
import os
import select
import signal
import threading
import weakref
from collections.abc import Callable
from typing import Any

from billiard.exceptions import WorkerLostError

from agentcron.agents import Agent
from agentcron.context import RunCancelled, RunContext
from agentcron.errors import ConfigError
from agentcron.guard.modes import AsyncMode, RunTimedOut, WorkerLost
from workers.in_child import (
    CANCEL_SIGNAL,
    ChildCall,
    ChildResult,
    mark_cancel,
    open_cancel_page,
    remove_cancel_page,
    run_in_child,
    started_pid,
)

__all__ = ["ChildMode", "open_cancel_page", "remove_cancel_page"]
log = logging.getLogger("agentcron.children")

_FAILURES: dict[str, type[Exception]] = {}
TERM_GRACE = 5.0
"""Seconds a terminated attempt's child has to exit before it is killed (billiard's own exit
path waits 1 s after telling the pool)."""


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
        pool replaces it. Once the attempt has returned, its child runs another: left alone.
        A child still there :data:`TERM_GRACE` seconds later is killed (:func:`_kill_later`)."""
        entry.terminated = True
        pid = _running_pid(entry)
        if pid and _signal_child(self.pool, pid, signal.SIGTERM):
            _kill_later(self.pool, pid, TERM_GRACE)
        log.info("attempt %d terminated (child %s)", entry.call_id, pid or "not started")

    @staticmethod
    def _cancel(entry: _InChild) -> None:
        entry.cancelled = True
        mark_cancel(entry.call_id)  # then the pid: a child notes its start, then reads the mark
        pid = _running_pid(entry)
        if pid:
            _signal(pid)


def _signal_child(pool: Any, pid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to ``pid`` through the pool, which signals only its own children."""
    try:
        pool.terminate_job(pid, sig)
    except Exception as exc:
        log.warning("sending %s to the child %d of a cancelled attempt failed (%s: %s)",
                    sig.name, pid, type(exc).__name__, exc)  # fmt: skip
        return False
    return True


def _kill_later(pool: Any, pid: int, grace: float) -> None:
    """``SIGKILL`` child ``pid`` if it outlives ``grace`` seconds after its ``SIGTERM``.

    The ``SystemExit`` that billiard's ``SIGTERM`` handler raises can be swallowed: by an agent's
    ``except BaseException``, or when it lands in a finalizer (a ``__del__`` that closes a client
    the agent just used), where Python reports it and carries on. The child then finishes its
    attempt, and a cold shutdown waits for it in ``pool.join``. A pidfd taken now tells whether
    that very process has exited (a live process's pid is not reused); the kill goes through
    the pool, which signals only its own children (Linux; elsewhere there is no escalation)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or the child is already gone
        return

    def watch() -> None:
        try:
            exited, _, _ = select.select([pidfd], [], [], grace)  # readable once it exits
        finally:
            os.close(pidfd)
        if not exited and _signal_child(pool, pid, signal.SIGKILL):
            log.warning("child %d outlived its SIGTERM by %gs: killed", pid, grace)

    threading.Thread(target=watch, name=f"agentcron-kill-{pid}", daemon=True).start()


def _running_pid(entry: _InChild) -> int:
    """The child running ``entry``'s attempt (0: none yet, or it has returned); known from the
    page before the pool's accept message is read."""
    if entry.ended:
        return 0
    return entry.pid or started_pid(entry.call_id)


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
