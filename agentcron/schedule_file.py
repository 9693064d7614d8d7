"""Loading a schedule file (``beat_schedule.py``): its ``JOBS``, ``BUDGETS`` and ``LIMITS``.

The file is executed as a module with its folder on the import path; its jobs are validated by
:func:`agentcron.jobs.compile_jobs`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from agentcron.errors import ConfigError, Problem
from agentcron.jobs import DEFAULT_CONFIG_MAX_BYTES, Declared, Job, JobSpec, compile_jobs
from agentcron.limits.declare import named_limits
from agentcron.spend.budgets import named_budgets


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


