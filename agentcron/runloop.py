"""One attempt loop for every runner, and the one :class:`RunReport`.

The Celery guard (:mod:`agentcron.guard.attempts`) and the in-process schedulers
(:mod:`agentcron.inprocess.runner`) run a window's attempts through :func:`attempt_loop`: call
the agent, and on a failure wait :func:`~agentcron.backoff.backoff_delay` (exponential, full
jitter, capped) before the next attempt, up to the job's attempts. What differs between them is
passed in: what a retry must do first (the guard records it in the ledger, fenced by its token),
how to sleep (the injected clock; the scheduler's sleep says when it is stopping), and which
exceptions end the run at once. :class:`RunReport` is how a window ended, as the guard's
callbacks and the in-process schedulers report it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agentcron.backoff import backoff_delay

T = TypeVar("T")


@dataclass(frozen=True)
class RunReport:
    """How one window ended: what ``on_success`` / ``on_failure`` callbacks of a job receive,
    and what an in-process runner reports (``state``: succeeded, failed, cancelled, duplicate,
    or a ledger state's value)."""

    job: str
    window_key: str
    slot: str
    state: str
    attempts: int
    result: Any = None
    error: str | None = None
    detail: str = ""


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` for logs and stats (the message is the agent's own text)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class Backoff:
    """The backoff between attempts: :func:`~agentcron.backoff.backoff_delay`'s arguments."""

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random | None = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt``."""
        return backoff_delay(attempt, self.base, self.cap, self.rng)


@dataclass(frozen=True)
class Ended(Generic[T]):
    """How :func:`attempt_loop` ended: the last attempt's number, and its result, or the last
    failure (``error``); ``stopped`` when a retry was refused or the wait was cut short."""

    attempt: int
    result: T | None = None
    error: Exception | None = None
    stopped: bool = False

    @property
    def succeeded(self) -> bool:
        """True when the last attempt returned."""
        return self.error is None and not self.stopped


Retry = Callable[[int, Exception, float], Awaitable[int | None]]
"""Before a retry: ``(failed attempt, its error, the delay)`` ⇒ the next attempt's number, or
None to stop (the guard: a newer holder fenced this run out)."""
Sleep = Callable[[float], Awaitable[bool]]
"""Waits ``seconds``; False to stop instead of retrying (a scheduler shutting down)."""


async def attempt_loop(
    call: Callable[[int], Awaitable[T]], *, first: int, max_attempts: int, backoff: Backoff,
    retry: Retry, sleep: Sleep, final: tuple[type[Exception], ...] = (),
    failed: Exception | None = None,
) -> Ended[T]:  # fmt: skip
    """Call ``call(attempt)`` from attempt ``first`` until one returns or ``max_attempts`` have
    failed, waiting ``backoff`` between attempts.

    An exception of a ``final`` type ends the loop at once with it as the error, no retry (the
    guard's time limit, a cancelled run, a configuration error); a :class:`BaseException` that is
    not an :class:`Exception` (the task's cancellation) propagates.

    With ``failed``, attempt ``first`` was already made by the caller and raised it: the guard
    makes its first attempt itself, so that no loop frame or closure is kept per run while
    ten thousand agents are in flight (the loop starts only when an attempt fails).
    """
    attempt = first
    while True:
        exc = failed
        failed = None
        if exc is None:
            try:
                return Ended(attempt, result=await call(attempt))
            except Exception as raised:
                exc = raised
        if isinstance(exc, final) or attempt >= max_attempts:
            return Ended(attempt, error=exc)
        delay = backoff.delay(attempt)
        following = await retry(attempt, exc, delay)
        if following is None:
            return Ended(attempt, error=exc, stopped=True)
        if not await sleep(delay):
            return Ended(attempt, error=exc, stopped=True)
        attempt = following
