"""One request in flight on the asyncio pool (:mod:`workers.pool`): Celery's target and
callbacks, how the run was stopped, and the handle ``apply_async`` returns for it.

Ten thousand runs may be in flight in one process, so a run is one slotted object: no future,
Condition or Lock per run (a thread that wants to wait gets an Event made on demand), and what
only starting the run needs (the tracer's arguments) is let go once it has started.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from billiard.einfo import ExceptionInfo
from billiard.exceptions import WorkerLostError
from celery.exceptions import SoftTimeLimitExceeded, Terminated

log = logging.getLogger("agentcron.pool")

Callback = Callable[..., Any] | None


class Run:
    """One request in flight: Celery's target and callbacks, and how it ended."""

    __slots__ = ("accept_callback", "args", "callback", "done", "ident", "kwargs", "on_loop",
                 "signal", "soft_timeout", "started", "stopped_by", "target", "task",
                 "timeout", "timeout_callback", "waiter")  # fmt: skip

    def __init__(
        self, ident: int, target: Callable[..., Any] | None, args: tuple[Any, ...],
        kwargs: dict[str, Any], callback: Callback, accept_callback: Callback,
        timeout_callback: Callback, soft_timeout: float | None, timeout: float | None,
        on_loop: bool,
    ) -> None:  # fmt: skip
        self.ident, self.target, self.args, self.kwargs = ident, target, args, kwargs
        self.callback, self.accept_callback = callback, accept_callback
        self.timeout_callback = timeout_callback
        self.soft_timeout, self.timeout, self.on_loop = soft_timeout, timeout, on_loop
        self.started = 0.0
        self.stopped_by: str | None = None
        self.signal: int | None = None
        self.task: asyncio.Task[Any] | None = None
        self.done = False
        self.waiter: threading.Event | None = None

    def __repr__(self) -> str:
        return f"<Run {self.ident} done={self.done} stopped_by={self.stopped_by}>"

    def start(self) -> Any:
        """Call Celery's tracer; its arguments (the message's kwargs) are not kept after."""
        target, args, kwargs = self.target, self.args, self.kwargs
        self.target, self.args, self.kwargs = None, (), {}
        assert target is not None
        return target(*args, **kwargs)

    def finished(self) -> None:
        """Mark the run ended and wake a thread waiting in :meth:`ApplyResult.get`, if any."""
        self.done = True
        if self.waiter is not None:
            self.waiter.set()

    def stopped(self) -> Any:
        """Celery's failure triple for a run whose task was cancelled (None: already reported)."""
        runtime = time.monotonic() - self.started
        if self.stopped_by == "hard":
            return None  # timeout_callback already reported and acknowledged it
        if self.stopped_by == "soft":
            return (1, failure(SoftTimeLimitExceeded(self.soft_timeout)), runtime)
        if self.stopped_by == "terminate":
            return (1, failure(Terminated(self.signal or 15)), runtime)
        reason = f"worker shut down; run cancelled after {runtime:.1f}s"
        return (1, failure(WorkerLostError(reason)), runtime)


class ApplyResult:
    """What ``apply_async`` returns (the worker keeps a weak reference to it)."""

    __slots__ = ("__weakref__", "run")

    def __init__(self, run: Run) -> None:
        self.run = run

    def get(self, timeout: float | None = None) -> None:
        """Wait for the run to end."""
        self.wait(timeout)
        if not self.run.done:
            raise TimeoutError(f"run {self.run.ident} still in flight after {timeout}s")

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the run to end."""
        if self.run.done:
            return
        waiter = self.run.waiter = self.run.waiter or threading.Event()
        if not self.run.done:  # it may have ended between the two checks
            waiter.wait(timeout)

    def terminate(self, signal: int | None = None) -> None:
        """Celery's ``Request.cancel``/``terminate`` call this after ``terminate_job``.

        ``terminate_job`` has already cancelled the run's asyncio task (on a broker connection
        loss, Celery cancels every unacknowledged late-ack run so that it is redelivered):
        nothing is left to do, but the call must not raise.
        """


def failure(exc: BaseException) -> ExceptionInfo:
    """``exc`` as Celery's tracer reports a failure."""
    try:
        raise exc
    except BaseException:
        return ExceptionInfo()


def call(callback: Callback, *args: Any) -> None:
    """A Celery callback; its error is logged, never raised into the loop."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        log.exception("celery callback %r failed", callback)
