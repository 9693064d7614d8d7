"""Job declarations (data the user writes) and their validation into runnable specs.

``beat_schedule.py`` is data only: ``JOBS = [Job(...), ...]``. :func:`compile_jobs` checks every
field of every job (:mod:`agentcron.job_fields`), reports every problem of the file together in
one :class:`ConfigError`, and returns nothing at all from a half-valid file. Loading the file
itself is :mod:`agentcron.schedule_file`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agentcron.agents import Agent, AgentKind, DeclaredModules, resolve_agent
from agentcron.delivery.targets import Target, parse_targets
from agentcron.errors import ConfigError, Problem
from agentcron.instants import parse_instant
from agentcron.job_fields import (
    Duration,
    check_choice,
    check_job_config,
    check_max_retries,
    check_type,
    resolve_callback,
    to_timedelta,
)
from agentcron.limits.declare import Limit, job_limits
from agentcron.schedules import Schedule, parse_schedule
from agentcron.spend.budgets import Budget, job_budget
from agentcron.windows import GRANULARITIES, is_job_name, is_queue_name

OVERLAP_POLICIES = ("skip", "buffer_one", "buffer_all", "cancel_other", "allow")
COALESCE_POLICIES = ("latest", "all", "none")
SYNC_QUEUE = "agentcron.sync"
ASYNC_QUEUE = "agentcron.async"
DEFAULT_CONFIG_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Job:
    """One scheduled agent job, as declared in ``beat_schedule.py``.

    ``max_retries`` is the number of *total attempts* (1 initial + retries). Durations take
    seconds, a ``timedelta`` or an interval text such as ``"15m"``.
    """

    name: str
    _: KW_ONLY
    agent: Any
    schedule: str
    task: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    tz: str = "UTC"
    window: str = "slot"
    overlap: str = "skip"
    max_retries: int = 3
    backoff_base: Duration = 1.0
    backoff_cap: Duration = 300.0
    timeout: Duration | None = 3600.0
    lease_ttl: Duration = 60.0
    catchup_window: Duration | None = None
    coalesce: str = "latest"
    misfire_grace: Duration | None = None
    jitter: Duration = 0.0
    on_success: Callable[..., Any] | str | None = None
    on_failure: Callable[..., Any] | str | None = None
    queue: str | None = None
    enabled: bool = True
    start: datetime | str | None = None
    budget: Mapping[str, Any] | str | None = None
    limits: Sequence[str] = ()
    deliver: Sequence[str] = ()


@dataclass(frozen=True)
class JobSpec:
    """A validated job: its schedule parsed, its agent resolved, its durations normalised."""

    job: Job
    schedule: Schedule
    agent: Agent
    queue: str
    timeout: timedelta | None
    lease_ttl: timedelta
    backoff_base: float
    backoff_cap: float
    catchup_window: timedelta
    misfire_grace: timedelta
    jitter: timedelta
    on_success: Callable[..., Any] | None
    on_failure: Callable[..., Any] | None
    budget: Budget | None = None  # resolved; a named one is shared by budget_jobs
    budget_jobs: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()  # held for the whole run
    declared_limits: Mapping[str, Limit] = field(default_factory=dict)  # for ctx.limit(name)
    targets: tuple[Target, ...] = ()  # where the run's reports are delivered (``Job.deliver``)

    @property
    def name(self) -> str:
        return self.job.name

    def lease_name(self, window_key: str) -> str:
        """The lease a run of ``window_key`` holds while it is alive: one per window when the job
        allows overlap, else one per job (the guard takes it, the watchdog looks it up)."""
        return window_key if self.job.overlap == "allow" else self.name

    @property
    def kind(self) -> AgentKind:
        return self.agent.kind


def _queue_for(job: Job, kind: AgentKind) -> str:
    if job.queue is not None:
        if not is_queue_name(job.queue):
            reason = "a queue name is 1-128 letters, digits, '_', '.', ':', '-'"
            raise ConfigError([Problem(None, "queue", repr(job.queue), reason)])
        return job.queue
    return ASYNC_QUEUE if kind is AgentKind.ASYNC else SYNC_QUEUE


def _scalar_checks(job: Job, limit: int) -> list[Callable[[], None]]:
    return [
        lambda: check_choice(job.window, "window", GRANULARITIES),
        lambda: check_choice(job.overlap, "overlap", OVERLAP_POLICIES),
        lambda: check_choice(job.coalesce, "coalesce", COALESCE_POLICIES),
        lambda: check_max_retries(job.max_retries),
        lambda: check_type(job.task, "task", str, "text"),
        lambda: check_type(job.enabled, "enabled", bool, "True or False"),
        lambda: check_job_config(job.config, limit),
    ]


def compile_job(
    job: Job, search_paths: Sequence[Path] = (), config_max_bytes: int = DEFAULT_CONFIG_MAX_BYTES,
    declared: DeclaredModules | None = None, declarations: Declared | None = None,
) -> JobSpec:
    """Validate one job; raise a ConfigError naming every problem with it. With ``declared``
    (a runtime schedule), its agent and callbacks must come from declared modules.

    ``declarations`` holds the schedule file's BUDGETS and LIMITS; without it, a budget or
    limit given by name is not resolved (beat only needs the schedule).
    """
    problems: list[Problem] = []

    def attempt(step: Callable[[], Any]) -> Any:
        try:
            return step()
        except ConfigError as exc:
            problems.extend(exc.for_job(job.name).problems)
            return None

    if not is_job_name(job.name):
        reason = "a job name is 1-128 letters, digits, '_', '.', '-' (no '@', no spaces)"
        problems.append(Problem(str(job.name), "name", str(job.name), reason))
    for check in _scalar_checks(job, config_max_bytes):
        attempt(check)
    start = attempt(lambda: _start_of(job))
    schedule: Schedule | None = attempt(
        lambda: parse_schedule(job.schedule, job.tz, start) if isinstance(job.schedule, str)
        else _raise(Problem(None, "schedule", repr(job.schedule), "must be an expression text"))
    )
    agent: Agent | None = attempt(lambda: resolve_agent(job.agent, search_paths, declared))
    durations: dict[str, timedelta | None] = {
        name: attempt(functools.partial(_optional_duration, job, name))
        for name in ("timeout", "lease_ttl", "backoff_base", "backoff_cap", "catchup_window",
                     "misfire_grace", "jitter")
    }  # fmt: skip
    if durations["lease_ttl"] is not None and durations["lease_ttl"] < timedelta(seconds=1):
        problems.append(Problem(job.name, "lease_ttl", str(job.lease_ttl), "must be >= 1 second"))
    callbacks: dict[str, Callable[..., Any] | None] = {
        name: attempt(functools.partial(resolve_callback, getattr(job, name), name, search_paths,
                                        declared))
        for name in ("on_success", "on_failure")
    }
    queue = attempt(lambda: _queue_for(job, agent.kind)) if agent is not None else None
    budget: Budget | None = attempt(lambda: _budget_of(job, declarations))
    limits: tuple[str, ...] = attempt(lambda: job_limits(
        job.limits, declarations.limits if declarations else None)) or ()
    targets: tuple[Target, ...] = attempt(lambda: parse_targets(job.deliver)) or ()
    if problems or schedule is None or agent is None or queue is None:
        raise ConfigError(problems)
    period = schedule.period or timedelta(days=1)
    catchup = durations["catchup_window"] or period
    zero = timedelta(0)
    return JobSpec(
        job=job,
        schedule=schedule,
        agent=agent,
        queue=queue,
        timeout=durations["timeout"],
        lease_ttl=durations["lease_ttl"] or timedelta(seconds=60),
        backoff_base=(durations["backoff_base"] or zero).total_seconds(),
        backoff_cap=(durations["backoff_cap"] or zero).total_seconds(),
        catchup_window=catchup,
        misfire_grace=durations["misfire_grace"] or catchup,
        jitter=durations["jitter"] or zero,
        on_success=callbacks["on_success"],
        on_failure=callbacks["on_failure"],
        budget=budget,
        budget_jobs=(job.name,) if budget is not None else (),
        limits=limits,
        declared_limits=declarations.limits if declarations else {},
        targets=targets,
    )


@dataclass(frozen=True)
class Declared:
    """A schedule file's named BUDGETS and LIMITS (the latter with ``AGENTCRON_LIMITS``)."""

    budgets: Mapping[str, Budget] = field(default_factory=dict)
    limits: Mapping[str, Limit] = field(default_factory=dict)


def _budget_of(job: Job, declared: Declared | None) -> Budget | None:
    if isinstance(job.budget, str) and declared is None:
        return None  # resolved where the schedule file's BUDGETS are known
    return job_budget(job.name, job.budget, job.tz, declared.budgets if declared else {})


def share_budgets(specs: list[JobSpec]) -> list[JobSpec]:
    """Each spec with the names of every job that spends from its budget."""
    sharing: dict[str, list[str]] = {}
    for spec in specs:
        if spec.budget is not None:
            sharing.setdefault(spec.budget.name, []).append(spec.name)
    return [dataclasses.replace(s, budget_jobs=tuple(sharing[s.budget.name]))
            if s.budget is not None else s for s in specs]  # fmt: skip


def _optional_duration(job: Job, name: str) -> timedelta | None:
    value = getattr(job, name)
    return None if value is None else to_timedelta(value, name)


def _raise(problem: Problem) -> None:
    raise ConfigError([problem])


def _start_of(job: Job) -> datetime | None:
    if job.start is None or isinstance(job.start, datetime):
        if isinstance(job.start, datetime) and job.start.tzinfo is None:
            raise ConfigError([Problem(None, "start", job.start.isoformat(), "must be aware")])
        return job.start
    return parse_instant(str(job.start))


def compile_jobs(
    jobs: Iterable[Job],
    search_paths: Sequence[Path] = (),
    config_max_bytes: int = DEFAULT_CONFIG_MAX_BYTES,
    declarations: Declared | None = None,
) -> list[JobSpec]:
    """Validate every job; all problems of all jobs in one ConfigError, or every spec."""
    from agentcron.spec_cache import SpecCache  # it builds on compile_job

    cache = SpecCache(search_paths, config_max_bytes, declarations=declarations)
    problems: list[Problem] = []
    specs: list[JobSpec] = []
    seen: set[str] = set()
    for job in jobs:
        if not isinstance(job, Job):
            problems.append(Problem(None, "JOBS", repr(job)[:80], "not a Job(...) declaration"))
            continue
        if job.name in seen:
            problems.append(Problem(job.name, "name", job.name, "duplicate job name"))
        seen.add(job.name)
        try:
            specs.append(cache.compile(job))  # jobs alike but for their names: compiled once
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return share_budgets(specs)
