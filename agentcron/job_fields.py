"""Checks of one job's fields: durations, choices, config, callbacks, attempts.

Each check raises a :class:`~agentcron.errors.ConfigError` with one problem naming the field and
the offending text; :func:`agentcron.jobs.compile_job` gathers them for the whole job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from agentcron.agents import DeclaredModules, import_object
from agentcron.errors import ConfigError, Problem
from agentcron.schedules import MAX_INTERVAL, parse_schedule
from agentcron.secrets import check_config, redact

Duration = int | float | timedelta | str
MAX_ATTEMPTS = 10_000


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


def check_choice(value: object, field_name: str, choices: Sequence[str]) -> None:
    """``value`` is one of ``choices``."""
    if value not in choices:
        reason = f"unknown value; one of {', '.join(choices)}"
        raise ConfigError([Problem(None, field_name, str(value), reason)])


def check_job_config(config: object, limit: int) -> None:
    """A JSON dict within ``limit`` bytes whose ``env:NAME`` values name variables."""
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


def resolve_callback(
    value: object, field_name: str, paths: Sequence[Path], declared: DeclaredModules | None = None
) -> Callable[..., Any] | None:
    """A callback given as a function or a ``module:name`` reference (never a class)."""
    if value is None:
        return None
    target = (import_object(value, paths, field_name, declared) if isinstance(value, str)
              else value)  # fmt: skip
    if isinstance(target, type):  # never instantiate a class named by a reference
        raise ConfigError([Problem(None, field_name, repr(value)[:200], "is a class, not a function")])
    if not callable(target):
        raise ConfigError([Problem(None, field_name, repr(value), "not callable")])
    return target  # type: ignore[no-any-return]


def check_max_retries(value: object) -> None:
    """``max_retries`` counts total attempts: 1 to :data:`MAX_ATTEMPTS`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError([Problem(None, "max_retries", repr(value), "not an integer")])
    if value < 1:
        reason = "must be >= 1 (it counts total attempts, 1 initial + retries)"
        raise ConfigError([Problem(None, "max_retries", str(value), reason)])
    if value > MAX_ATTEMPTS:
        reason = f"must be at most {MAX_ATTEMPTS}"
        raise ConfigError([Problem(None, "max_retries", str(value)[:40], reason)])


def check_type(value: object, field_name: str, kind: type, what: str) -> None:
    """``value`` is a ``kind`` (``what`` says so in the error)."""
    if not isinstance(value, kind):
        raise ConfigError([Problem(None, field_name, repr(value), f"must be {what}")])
