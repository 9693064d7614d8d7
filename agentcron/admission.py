"""Admitting a delivered run message: what a worker checks before the guard may run it.

A broker message is not trusted. In order: it must parse (:meth:`RunMessage.from_kwargs`);
with ``AGENTCRON_SIGNING_KEY`` set it must carry a good signature (:mod:`agentcron.signing`);
its job must be declared; and its window must be one the job really has: its slot a fire time
of the job's schedule in the window it names (or the window's own start, when a fire falls in
that window), not ahead of now by more than :data:`FUTURE_SKEW`, or else a window recorded in
the ledger (beat, ``trigger``, ``backfill`` and the watchdog record before they publish).
``manual`` and ``backfill`` messages skip the misfire check, so they must name a recorded
window. Anything else is refused through :func:`refuse_message`, the one place a delivery is
refused: acknowledged (the task returns), logged once, never run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import OperationalError

from agentcron.backoff import backoff_delay
from agentcron.batching import Coalescer, PerLoop
from agentcron.errors import ConfigError
from agentcron.ledger.history import use_force
from agentcron.messages import RunMessage
from agentcron.signing import signature_problem
from agentcron.windows import window_start

if TYPE_CHECKING:
    from agentcron.jobs import JobSpec
    from agentcron.ledger.store import Ledger
    from agentcron.runtime import Runtime

log = logging.getLogger("agentcron.admission")
FUTURE_SKEW = timedelta(minutes=5)
"""How far ahead of this worker's clock an unrecorded slot may be (clock skew between hosts)."""
RECORDED_FIRST = ("manual", "backfill")
T = TypeVar("T")
_ONE_US = timedelta(microseconds=1)
_SHOWN = 200


def refuse_message(kwargs: Mapping[str, Any], reason: str) -> None:
    """Refuse one delivery: log it once (truncated, never its signature or other fields), and
    let the caller acknowledge it without running it. Every refusal of a run message goes
    through here (the place to route refusals to a dead-letter store)."""
    job = str(kwargs.get("job", "?"))[:_SHOWN] if isinstance(kwargs, Mapping) else "?"
    key = str(kwargs.get("window_key", "?"))[:_SHOWN] if isinstance(kwargs, Mapping) else "?"
    log.error("refused run message %s (job %s): %s", key, job, reason[:_SHOWN * 5])


def dead_letter_refused(kwargs: Mapping[str, Any], problem: str) -> None:
    """Keep an unsigned or forged delivery in the dead-letter store (its kwargs as JSON, from
    the queue the worker took it from), so that an operator sees who is writing to the broker."""
    import json

    from agentcron.deadletters import dead_letter

    kind = "unsigned" if problem.startswith("unsigned") else "forged"
    dead_letter(f"{kind}: {problem}", _current_queue(), json.dumps(dict(kwargs), default=str))


def _current_queue() -> str:
    """The queue of the task being executed (Celery's request), or ``?`` outside a task."""
    try:
        from celery import current_task

        info = current_task.request.delivery_info or {}
        return str(info.get("routing_key") or "?")
    except Exception:  # no task, or a request without delivery information
        return "?"


@dataclass(frozen=True)
class Admitted:
    """A delivery that passed the checks that need no I/O. ``pending`` when the ledger must
    still be asked (by :func:`confirm_async`): whether its window is recorded (``is_slot``
    False), whether its ``force`` was granted."""

    runtime: Runtime
    spec: JobSpec
    message: RunMessage
    pending: bool = False
    is_slot: bool = True

    def parts(self) -> tuple[Runtime, JobSpec, RunMessage]:
        """``(runtime, spec, message)``."""
        return self.runtime, self.spec, self.message


def admit(kwargs: Mapping[str, Any], runtime_of: Callable[[], Runtime], *,
          ask_ledger: bool = True) -> Admitted | None:  # fmt: skip
    """The delivery, admitted; None when it was refused. With ``ask_ledger=False`` what needs
    the ledger is left ``pending`` (an event loop must not block on the database: see
    :func:`confirm_async`). A ``force`` the ledger did not grant is dropped (the message then
    runs as not forced: a finished window is a duplicate)."""
    try:
        message = RunMessage.from_kwargs(dict(kwargs))
    except ValueError as exc:
        refuse_message(kwargs, str(exc))
        return None
    runtime = runtime_of()
    problem = signature_problem(kwargs, message, runtime.settings.signing_key)
    if problem is not None:
        refuse_message(kwargs, problem)
        dead_letter_refused(kwargs, problem)
        return None
    try:
        spec = runtime.spec(message.job)
    except KeyError:
        refuse_message(kwargs, f"no job named {message.job!r}")
        return None
    is_slot = is_scheduled_slot(spec, message, runtime.clock.now())
    if not ask_ledger:
        return Admitted(runtime, spec, message, not is_slot or message.force, is_slot)
    if not is_slot:
        problem = _while_unreachable(runtime, lambda: window_problem(
            spec, message, runtime.ledger, runtime.clock.now()))
        if problem is not None:
            refuse_message(kwargs, problem)
            return None
    if message.force:
        granted = _while_unreachable(runtime, lambda: use_force(
            runtime.ledger.engine, message.window_key, runtime.clock.now()))
        message = forced_or_not(message, granted)
    return Admitted(runtime, spec, message)


_LOOKUPS: PerLoop[Ledger, Coalescer[str, bool]] = PerLoop(
    lambda ledger: Coalescer(functools.partial(_recorded, ledger), 500, 2))


def _recorded(ledger: Ledger, keys: Sequence[str]) -> list[bool]:
    found = ledger.get_many(keys)
    return [key in found for key in keys]


async def confirm_async(admitted: Admitted) -> Admitted | None:
    """Finish a ``pending`` admission off the event loop: a window that is not a slot must be
    recorded (looked up with the concurrent runs of this loop in one query, from a thread),
    else it is refused (None); a ``force`` must be granted, else it is dropped."""
    if not admitted.pending:
        return admitted
    runtime, spec, message = admitted.parts()
    key = message.window_key
    if not admitted.is_slot:
        lookups = _LOOKUPS.get(runtime.ledger)
        if not await _while_unreachable_async(runtime, lambda: lookups.submit(key)):
            refuse_message(message.to_kwargs(),
                           unrecorded_reason(spec, message, runtime.clock.now()))
            return None
    if message.force:
        granted = await _while_unreachable_async(runtime, lambda: asyncio.to_thread(
            use_force, runtime.ledger.engine, key, runtime.clock.now()))
        message = forced_or_not(message, granted)
    return Admitted(runtime, spec, message)


def forced_or_not(message: RunMessage, granted: bool) -> RunMessage:
    """``message`` as it may run: without its ``force`` unless the ledger granted it."""
    if granted:
        return message
    log.warning("%s: force not granted in the ledger (forged or replayed); run as not forced",
                message.window_key)  # fmt: skip
    return dataclasses.replace(message, force=False)


async def _while_unreachable_async(runtime: Runtime, call: Callable[[], Awaitable[T]]) -> T:
    """:func:`_while_unreachable` for a coroutine."""
    attempt, deadline = 0, runtime.clock.monotonic() + runtime.settings.visibility_timeout / 2
    while True:
        try:
            return await call()
        except OperationalError:  # the ledger is down: wait for it, as the guard does
            attempt += 1
            if runtime.clock.monotonic() > deadline:
                raise
            await runtime.clock.asleep(_unreachable(attempt))


def _unreachable(attempt: int) -> float:
    delay = backoff_delay(attempt, 0.2, 5.0)
    log.warning("ledger unavailable while admitting a run message; retrying in %.2fs", delay)
    return delay


def _while_unreachable(runtime: Runtime, call: Callable[[], T]) -> T:
    """``call()`` again with backoff while the ledger is unreachable (a message that waits is
    late, one that fails is lost), up to half the visibility timeout."""
    attempt, deadline = 0, runtime.clock.monotonic() + runtime.settings.visibility_timeout / 2
    while True:
        try:
            return call()
        except OperationalError:
            attempt += 1
            if runtime.clock.monotonic() > deadline:
                raise
            runtime.clock.sleep(_unreachable(attempt))


def is_scheduled_slot(spec: JobSpec, message: RunMessage, now: datetime) -> bool:
    """Whether the message may run without asking the ledger: not a manual or backfill run,
    its slot a slot of its job (:func:`is_slot_window`) and not ahead of ``now``."""
    return (message.trigger not in RECORDED_FIRST and message.slot <= now + FUTURE_SKEW
            and is_slot_window(spec, message))  # fmt: skip


def window_problem(spec: JobSpec, message: RunMessage, ledger: Ledger,
                   now: datetime) -> str | None:  # fmt: skip
    """Why ``message`` names a window its job does not have, or None if it may run."""
    if is_scheduled_slot(spec, message, now):
        return None
    record = ledger.get(message.job, message.window_start)
    if record is not None and record.window_key == message.window_key:
        return None
    return unrecorded_reason(spec, message, now)


def unrecorded_reason(spec: JobSpec, message: RunMessage, now: datetime) -> str:
    """Why a window that the ledger does not know is refused."""
    if message.trigger in RECORDED_FIRST:
        return f"a {message.trigger} window must be recorded in the ledger before it is sent"
    if message.slot > now + FUTURE_SKEW and is_slot_window(spec, message):
        return "its slot is in the future and the window is not recorded in the ledger"
    return (f"slot {message.slot.isoformat()} is not a slot of job {spec.name!r} "
            f"({spec.job.schedule!r}, window {spec.job.window!r}) and the window is not "
            "recorded in the ledger")  # fmt: skip


def is_slot_window(spec: JobSpec, message: RunMessage) -> bool:
    """Whether the message's slot is a fire time of the job (or its window's start, with a
    fire inside that window), and its window is that slot's window."""
    job = spec.job
    try:
        if window_start(message.slot, job.window, job.tz) != message.window_start:
            return False
        first = spec.schedule.next_fire(message.slot - _ONE_US)
        if first == message.slot:
            return True
        return (message.slot == message.window_start and first is not None
                and window_start(first, job.window, job.tz) == message.window_start)  # fmt: skip
    except (ValueError, OverflowError, ConfigError):
        return False
