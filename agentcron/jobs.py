"""Job declarations (data the user writes) and their validation into runnable specs.

``beat_schedule.py`` is data only: ``JOBS = [Job(...), ...]``. :func:`compile_jobs` checks every
field of every job, reports every problem of the file together in one :class:`ConfigError`, and
returns nothing at all from a half-valid file.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agentcron.agents import Agent, AgentKind, DeclaredModules, import_object, resolve_agent
from agentcron.delivery.targets import Target, parse_targets
from agentcron.errors import ConfigError, Problem
from agentcron.limits.declare import Limit, job_limits, named_limits
from agentcron.schedules import MAX_INTERVAL, Schedule, parse_instant, parse_schedule
from agentcron.secrets import check_config, redact
from agentcron.spend.budgets import Budget, job_budget, named_budgets
from agentcron.windows import GRANULARITIES, is_job_name, is_queue_name

Duration = int | float | timedelta | str
OVERLAP_POLICIES = ("skip", "buffer_one", "buffer_all", "cancel_other", "allow")
COALESCE_POLICIES = ("latest", "all", "none")
SYNC_QUEUE = "agentcron.sync"
ASYNC_QUEUE = "agentcron.async"
DEFAULT_CONFIG_MAX_BYTES = 64 * 1024
MAX_ATTEMPTS = 10_000


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

    @property
    def kind(self) -> AgentKind:
        return self.agent.kind


def to_timedelta(value: Duration, field_name: str) -> timedelta:
    """Seconds, a timedelta or an interval text (``"90s"``, ``"15m"``) as a timedelta."""
    if isinstance(value, bool):
        raise ConfigError([Problem(None, field_name, str(value), "expected a duration")])
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError([Problem(None, field_name, str(value), "must be finite")])
        if abs(value) > MAX_INTERVAL.total_seconds():
            reason = f"must be at most {MAX_INTERVAL.days} days (10 years)"
            raise ConfigError([Problem(None, field_name, str(value), reason)])
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        from agentcron.schedules import IntervalSchedule

        try:
            parsed = parse_schedule(value)
        except ConfigError as exc:
            why = exc.problems[0].reason if exc.problems else ""
            reason = why if "at most" in why else "not a duration"
            raise ConfigError([Problem(None, field_name, value, reason)]) from exc
        if not isinstance(parsed, IntervalSchedule):
            raise ConfigError([Problem(None, field_name, value, "not a duration (try '15m')")])
        result = parsed.period
    else:
        raise ConfigError([Problem(None, field_name, repr(value), "expected a duration")])
    if result < timedelta(0):
        raise ConfigError([Problem(None, field_name, str(value), "must not be negative")])
    if result > MAX_INTERVAL:
        reason = f"must be at most {MAX_INTERVAL.days} days (10 years)"
        raise ConfigError([Problem(None, field_name, str(value), reason)])
    return result


def _check_choice(value: object, field_name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        reason = f"unknown value; one of {', '.join(choices)}"
        raise ConfigError([Problem(None, field_name, str(value), reason)])


def _check_config(config: object, limit: int) -> None:
    if not isinstance(config, Mapping):
        raise ConfigError([Problem(None, "config", repr(config), "must be a dict")])
    try:
        size = len(json.dumps(config, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        shown = repr(redact(config))[:80]  # never a secret in an error message
        raise ConfigError([Problem(None, "config", shown, f"not JSON: {exc}")]) from exc
    if size > limit:
        reason = f"too large: {size} bytes, limit {limit} bytes"
        raise ConfigError([Problem(None, "config", f"{size} bytes", reason)])
    if problems := check_config(config):  # env:NAME must name a variable
        raise ConfigError(problems)


def _resolve_callback(
    value: object, field_name: str, paths: Sequence[Path], declared: DeclaredModules | None = None
) -> Callable[..., Any] | None:
    if value is None:
        return None
    target = (import_object(value, paths, field_name, declared) if isinstance(value, str)
              else value)  # fmt: skip
    if isinstance(target, type):  # never instantiate a class named by a reference
        raise ConfigError([Problem(None, field_name, repr(value)[:200], "is a class, not a function")])
    if not callable(target):
        raise ConfigError([Problem(None, field_name, repr(value), "not callable")])
    return target  # type: ignore[no-any-return]


def _queue_for(job: Job, kind: AgentKind) -> str:
    if job.queue is not None:
        if not is_queue_name(job.queue):
            reason = "a queue name is 1-128 letters, digits, '_', '.', ':', '-'"
            raise ConfigError([Problem(None, "queue", repr(job.queue), reason)])
        return job.queue
    return ASYNC_QUEUE if kind is AgentKind.ASYNC else SYNC_QUEUE


def _check_max_retries(value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError([Problem(None, "max_retries", repr(value), "not an integer")])
    if value < 1:
        reason = "must be >= 1 (it counts total attempts, 1 initial + retries)"
        raise ConfigError([Problem(None, "max_retries", str(value), reason)])
    if value > MAX_ATTEMPTS:
        reason = f"must be at most {MAX_ATTEMPTS}"
        raise ConfigError([Problem(None, "max_retries", str(value)[:40], reason)])


def _check_type(value: object, field_name: str, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise ConfigError([Problem(None, field_name, repr(value), f"must be {what}")])


def _scalar_checks(job: Job, limit: int) -> list[Callable[[], None]]:
    return [
        lambda: _check_choice(job.window, "window", GRANULARITIES),
        lambda: _check_choice(job.overlap, "overlap", OVERLAP_POLICIES),
        lambda: _check_choice(job.coalesce, "coalesce", COALESCE_POLICIES),
        lambda: _check_max_retries(job.max_retries),
        lambda: _check_type(job.task, "task", str, "text"),
        lambda: _check_type(job.enabled, "enabled", bool, "True or False"),
        lambda: _check_config(job.config, limit),
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
        name: attempt(functools.partial(_resolve_callback, getattr(job, name), name, search_paths,
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
            specs.append(compile_job(job, search_paths, config_max_bytes, declarations=declarations))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return share_budgets(specs)


def load_schedule_file(path: Path | str) -> list[Job]:
    """Execute a schedule file and return its ``JOBS`` list (not yet validated)."""
    return load_declarations(path)[0]


def load_declarations(path: Path | str, limits_json: str = "") -> tuple[list[Job], Declared]:
    """Execute a schedule file: its ``JOBS`` (not yet validated), its ``BUDGETS`` and
    ``LIMITS`` (validated, with ``limits_json`` from ``AGENTCRON_LIMITS``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([Problem(None, "schedule file", str(path), "no such file")])
    module_name = f"_agentcron_schedule_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError([Problem(None, "schedule file", str(path), "cannot be loaded")])
    module = importlib.util.module_from_spec(spec)
    from agentcron.agents import import_paths

    try:
        with import_paths([path.parent]):
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    except Exception as exc:
        reason = f"failed to load: {type(exc).__name__}: {exc}"
        raise ConfigError([Problem(None, "schedule file", str(path), reason)]) from exc
    jobs = getattr(module, "JOBS", None)
    if not isinstance(jobs, list | tuple):
        reason = "must define JOBS = [Job(...), ...]"
        raise ConfigError([Problem(None, "schedule file", str(path), reason)])
    budgets, limits = getattr(module, "BUDGETS", ()), getattr(module, "LIMITS", ())
    for name, value in (("BUDGETS", budgets), ("LIMITS", limits)):
        if not isinstance(value, list | tuple):
            raise ConfigError([Problem(None, name, repr(value)[:80], "must be a list")])
    declared = Declared(named_budgets(budgets), named_limits(limits, limits_json))
    return list(jobs), declared


def load_jobs(
    path: Path | str, config_max_bytes: int = DEFAULT_CONFIG_MAX_BYTES, limits_json: str = ""
) -> list[JobSpec]:
    """Load and validate a schedule file; agent paths resolve from its folder and the cwd."""
    path = Path(path)
    jobs, declared = load_declarations(path, limits_json)
    return compile_jobs(jobs, [path.parent.resolve()], config_max_bytes, declared)


