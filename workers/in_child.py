"""What a prefork child runs with ``AGENTCRON_SYNC_CLAIM=main``: one attempt of an agent, sent by
the main process's :class:`workers.children.ChildMode`, and the shared page through which the
main process asks that attempt to stop.

The child resolves the job's config itself (no secret crosses the pipe), runs the agent on its
main thread under the job's timeout (``SIGALRM``, as in a sync run) with a run context of its
own, and returns what the attempt ended with and what its context gathered (reports, usage,
``ctx.log`` lines). A cancellation is a ``SIGUSR2`` the child honours only for the attempt that
the main process marked in the page (a signal that arrives after the attempt ended finds another
number there). The page is a file in ``/dev/shm``: children are spawned, not forked, so nothing
is inherited.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import pickle
import signal
import struct
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import OperationalError

from agentcron.agents import Agent
from agentcron.context import RunCancelled, RunContext
from agentcron.errors import ConfigError
from agentcron.guard.modes import RunTimedOut, call_agent
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
_SLOT = struct.Struct("qqq")  # per attempt (call id modulo _SLOTS): cancel mark, started call, pid
_PAGE: list[mmap.mmap] = []


def cancel_page_path(main_pid: int) -> str:
    """The shared page where the main process ``main_pid`` marks the attempts to cancel, and
    where a child notes the attempt it started and its pid (a file in ``/dev/shm`` when there
    is one: children are spawned, not forked, so nothing is inherited; see
    :mod:`workers.claims`)."""
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
                out.write(bytes(_SLOT.size * _SLOTS))
        with open(path, "r+b") as shared:
            page = mmap.mmap(shared.fileno(), _SLOT.size * _SLOTS)
    except OSError:
        return None
    _PAGE.append(page)
    return page


def remove_cancel_page() -> None:
    """The main process at shutdown: the page goes with it."""
    with contextlib.suppress(OSError):
        os.unlink(cancel_page_path(os.getpid()))


def mark_cancel(call_id: int) -> None:
    """The main process: attempt ``call_id`` is to stop."""
    page = open_cancel_page(os.getpid(), create=True)
    if page is not None:
        struct.pack_into("q", page, _SLOT.size * (call_id % _SLOTS), call_id)


def started_pid(call_id: int) -> int:
    """The main process: the pid of the child that started attempt ``call_id`` (0: not yet),
    known before the pool's accept message is read."""
    page = open_cancel_page(os.getpid(), create=True)
    if page is None:
        return 0
    _, started, pid = _SLOT.unpack_from(page, _SLOT.size * (call_id % _SLOTS))
    return int(pid) if started == call_id else 0


def cancel_marked(call_id: int) -> bool:
    page = open_cancel_page(os.getppid(), create=False)  # in a child: its main process's page
    return page is not None and _SLOT.unpack_from(page, _SLOT.size * (call_id % _SLOTS))[0] == call_id


def _mark_started(call_id: int) -> None:
    """In a child, before it checks the cancel mark (the main process marks, then reads)."""
    page = open_cancel_page(os.getppid(), create=False)
    if page is not None:
        struct.pack_into("qq", page, _SLOT.size * (call_id % _SLOTS) + 8, call_id, os.getpid())


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
    if current is not None and cancel_marked(current[0]):
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
        _mark_started(call.call_id)
        if cancel_marked(call.call_id):  # stopped before it started: the agent does not run
            ctx.request_cancel("cancelled by the worker's main process")
            ended = ChildResult("cancelled", error_type="RunCancelled", error=ctx.cancel_reason or "")
        else:
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
