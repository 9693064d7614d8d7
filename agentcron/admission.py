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

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agentcron.errors import ConfigError
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
_ONE_US = timedelta(microseconds=1)
_SHOWN = 200


def refuse_message(kwargs: Mapping[str, Any], reason: str) -> None:
    """Refuse one delivery: log it once (truncated, never its signature or other fields), and
    let the caller acknowledge it without running it. Every refusal of a run message goes
    through here (the place to route refusals to a dead-letter store)."""
    job = str(kwargs.get("job", "?"))[:_SHOWN] if isinstance(kwargs, Mapping) else "?"
    key = str(kwargs.get("window_key", "?"))[:_SHOWN] if isinstance(kwargs, Mapping) else "?"
    log.error("refused run message %s (job %s): %s", key, job, reason[:_SHOWN * 5])


def admit(kwargs: Mapping[str, Any], runtime_of: Callable[[], Runtime],
          ) -> tuple[Runtime, JobSpec, RunMessage] | None:  # fmt: skip
    """The runtime, job and message of a delivery that may run; None when it was refused."""
    try:
        message = RunMessage.from_kwargs(dict(kwargs))
    except ValueError as exc:
        refuse_message(kwargs, str(exc))
        return None
    runtime = runtime_of()
    problem = signature_problem(kwargs, message, runtime.settings.signing_key)
    if problem is not None:
        refuse_message(kwargs, problem)
        return None
    try:
        spec = runtime.spec(message.job)
    except KeyError:
        refuse_message(kwargs, f"no job named {message.job!r}")
        return None
    problem = window_problem(spec, message, runtime.ledger, runtime.clock.now())
    if problem is not None:
        refuse_message(kwargs, problem)
        return None
    return runtime, spec, message


def window_problem(spec: JobSpec, message: RunMessage, ledger: Ledger,
                   now: datetime) -> str | None:  # fmt: skip
    """Why ``message`` names a window its job does not have, or None if it may run."""
    if (message.trigger not in RECORDED_FIRST and message.slot <= now + FUTURE_SKEW
            and is_slot_window(spec, message)):  # fmt: skip
        return None
    record = ledger.get(message.job, message.window_start)
    if record is not None and record.window_key == message.window_key:
        return None
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
