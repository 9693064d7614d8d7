"""Everything one process needs to run windows: settings, clock, ledger, leases, guard, jobs.

A process builds one :class:`Runtime` (lazily, after fork: :func:`get_runtime`). Job specs come
from the schedule file and from the ledger's dynamic schedules; an unknown job name triggers one
reload before it is reported unknown, so schedules added at runtime reach running workers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from agentcron.clock import Clock
from agentcron.errors import ConfigError
from agentcron.guard import Guard
from agentcron.jobs import Declared, Job, JobSpec, compile_jobs
from agentcron.leases.base import LeaseStore
from agentcron.leases.factory import open_cancel_signals, open_lease_store
from agentcron.ledger.store import Ledger
from agentcron.refclock import ReferenceClock, attach_reference
from agentcron.schedule_file import load_declarations
from agentcron.settings import Settings

if TYPE_CHECKING:
    import asyncio

    from agentcron.delivery.service import DeliveryTask

log = logging.getLogger("agentcron.runtime")
SpecLoader = Callable[["Runtime"], list[JobSpec]]


def default_worker_id() -> str:
    """``host:pid``: names this process in the ledger."""
    return f"{socket.gethostname()}:{os.getpid()}"


def file_specs(runtime: Runtime) -> list[JobSpec]:
    """Jobs of the schedule file (none when the file does not exist); their modules become
    declared agent modules for the runtime schedules (``runtime.file_jobs``)."""
    path, settings = runtime.settings.schedule_path, runtime.settings
    if not path.exists():
        from agentcron.limits.declare import named_limits

        runtime.declarations = Declared({}, named_limits([], settings.limits))
        return []
    jobs, runtime.declarations = load_declarations(path, settings.limits)
    specs = compile_jobs(jobs, [path.parent.resolve()], settings.config_max_bytes,
                         runtime.declarations)  # fmt: skip
    runtime.file_jobs = [spec.job for spec in specs]
    return specs


def dynamic_specs(runtime: Runtime) -> list[JobSpec]:
    """Jobs added through ``agentcron schedules`` (the ledger's schedules table), only with
    agents from declared modules (others are ignored with an alert); their budgets and limits
    named from the schedule file's BUDGETS and LIMITS."""
    from agentcron.catalogue import load_specs

    return load_specs(runtime.ledger.engine, runtime.settings, runtime.file_jobs,
                      runtime.declarations)  # fmt: skip


class Runtime:
    """One process's view of agentcron."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        *,
        worker_id: str | None = None,
        ledger: Ledger | None = None,
        leases: LeaseStore | None = None,
        loaders: tuple[SpecLoader, ...] = (file_specs, dynamic_specs),
        timeout_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.settings = settings
        reference = None
        if clock is None:  # decide on the reference time (ledger or Redis), not this host's
            clock = reference = ReferenceClock(refresh=settings.clock_refresh_interval,
                                               warn_after=settings.clock_skew_warn)  # fmt: skip
        self.clock: Clock = clock
        self.worker_id = worker_id or default_worker_id()
        self.ledger = ledger or Ledger.from_settings(settings, clock)
        if reference is not None:
            attach_reference(reference, settings, self.ledger.engine)
        self.leases = leases or open_lease_store(settings, self.ledger.engine, clock)
        self.cancels = open_cancel_signals(settings, self.ledger.engine, clock)
        self.guard = Guard(self.ledger, self.leases, self.cancels, clock,
                           worker_id=self.worker_id, settings=settings,
                           timeout_errors=timeout_errors)  # fmt: skip
        self._loaders = loaders
        self.file_jobs: list[Job] = []
        self.declarations: Declared | None = None  # the schedule file's BUDGETS and LIMITS
        self._specs: dict[str, JobSpec] = {}
        self._lock = threading.Lock()
        self.reload()

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, clock: Clock | None = None,
        worker_id: str | None = None,
    ) -> Runtime:  # fmt: skip
        """A runtime from ``settings`` (default: the environment); without ``clock``, on the
        reference clock of :mod:`agentcron.refclock` (the ledger's or Redis' time)."""
        return cls(settings or Settings.from_env(), clock, worker_id=worker_id)

    def reload(self) -> None:
        """Load the job specs again from every source."""
        from agentcron.jobs import share_budgets

        specs: dict[str, JobSpec] = {}
        for loader in self._loaders:
            try:
                for spec in loader(self):
                    specs.setdefault(spec.name, spec)
            except ConfigError as exc:
                log.error("job declarations rejected by %s:\n%s", loader.__name__, exc)
                raise
        shared = share_budgets(list(specs.values()))  # a named budget spans file and runtime jobs
        with self._lock:
            self._specs = {spec.name: spec for spec in shared}

    def spec(self, job: str) -> JobSpec:
        """The spec of ``job``; KeyError if no source declares it."""
        found = self._specs.get(job)
        if found is None:
            self.reload()
            found = self._specs.get(job)
        if found is None:
            raise KeyError(f"unknown job {job!r}")
        return found

    def specs(self) -> list[JobSpec]:
        """Every known job."""
        return list(self._specs.values())

    def close(self) -> None:
        """Release connections."""
        self.ledger.close()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """This process's runtime, built on first use from the environment."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime.from_settings()
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or, with None, forget) this process's runtime: after fork, or in tests."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def reset_runtime() -> None:
    """Forget the runtime (call in a forked child before first use)."""
    set_runtime(None)


def start_worker_delivery(loop: asyncio.AbstractEventLoop, interval: float) -> DeliveryTask | None:
    """The async worker's sender on its event loop (None when ``interval`` is 0: off)."""
    if interval <= 0:
        return None
    from agentcron.alerts import safe_alerter
    from agentcron.clock import SYSTEM_CLOCK
    from agentcron.delivery.sender import Sender, sender_from_settings
    from agentcron.delivery.service import DeliveryTask

    def make() -> Sender:
        runtime = get_runtime()
        return sender_from_settings(runtime.settings, runtime.ledger.engine, runtime.clock,
                                    f"{default_worker_id()}:delivery",
                                    safe_alerter(runtime.settings))  # fmt: skip

    return DeliveryTask(loop, make, SYSTEM_CLOCK, interval)
