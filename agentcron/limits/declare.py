"""Fleet-wide limits as declared: ``LIMITS = [Limit("openai", concurrency=4, per_minute=60,
tokens_per_minute=90_000)]`` in the schedule file, or ``AGENTCRON_LIMITS`` as JSON
(``[{"name": "openai", "concurrency": 4, ...}]`` or ``{"openai": {"concurrency": 4}}``).

``concurrency`` counts holders at once (slots are leases of ``ttl`` seconds, renewed every
ttl/3, that expire with a dead holder); ``per_minute`` and ``tokens_per_minute`` count grants and
tokens in any sliding span of ``period`` seconds (60 unless a test shortens it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from agentcron.errors import ConfigError, Problem
from agentcron.windows import is_job_name


@dataclass(frozen=True)
class Limit:
    """A provider quota shared by every worker of the fleet."""

    name: str
    concurrency: int | None = None
    per_minute: int | None = None
    tokens_per_minute: int | None = None
    ttl: float = 30.0
    period: float = 60.0


def check_limit(limit: Limit) -> Limit:
    """``limit`` if valid, else a ConfigError naming the field."""

    def bad(name: str, value: object, reason: str) -> ConfigError:
        return ConfigError([Problem(None, f"limit.{name}", repr(value), reason)])

    if not is_job_name(limit.name):
        raise bad("name", limit.name, "1-128 letters, digits, '_', '.', '-'")
    for name in ("concurrency", "per_minute", "tokens_per_minute"):
        value = getattr(limit, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= 10**12):  # fmt: skip
            raise bad(name, value, "a whole number >= 1")
    if limit.concurrency is None and limit.per_minute is None and limit.tokens_per_minute is None:
        raise bad("concurrency", None, "give concurrency, per_minute and/or tokens_per_minute")
    for name, low in (("ttl", 1.0), ("period", 0.1)):
        value = getattr(limit, name)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or not low <= value <= 86400:
            raise bad(name, value, f"seconds between {low:g} and 86400")
    return limit


def _from_json(raw: str) -> list[object]:
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise ConfigError([Problem(None, "AGENTCRON_LIMITS", raw[:80], f"not JSON: {exc}")]) from exc
    if isinstance(data, Mapping):
        data = [{"name": k, **v} if isinstance(v, Mapping) else v for k, v in data.items()]
    if not isinstance(data, list):
        raise ConfigError([Problem(None, "AGENTCRON_LIMITS", raw[:80], "a JSON list or object")])
    known = {f.name for f in fields(Limit)}
    out: list[object] = []
    for item in data:
        if not isinstance(item, Mapping) or set(item) - known or "name" not in item:
            raise ConfigError([Problem(None, "AGENTCRON_LIMITS", repr(item)[:80],
                                       f"each limit an object with name and {sorted(known)}")])
        out.append(Limit(**item))
    return out


def named_limits(values: Sequence[object], env_json: str = "") -> dict[str, Limit]:
    """LIMITS of a schedule file plus ``AGENTCRON_LIMITS``, by name (the file wins)."""
    problems: list[Problem] = []
    found: dict[str, Limit] = {}
    extra = _from_json(env_json) if env_json.strip() else []
    for value in [*values, *extra]:
        if not isinstance(value, Limit):
            problems.append(Problem(None, "LIMITS", repr(value)[:80], "not a Limit(...)"))
            continue
        try:
            check_limit(value)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        found.setdefault(value.name, value)
    if problems:
        raise ConfigError(problems)
    return found


def job_limits(value: object, declared: Mapping[str, Limit] | None) -> tuple[str, ...]:
    """A job's ``limits=[...]``: names of declared limits (checked when ``declared`` is known)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError([Problem(None, "limits", repr(value)[:80], "a list of limit names")])
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or (declared is not None and name not in declared):
            known = ", ".join(sorted(declared or {})) or "none declared"
            raise ConfigError([Problem(None, "limits", repr(name), f"no such limit ({known})")])
    if len(set(names)) != len(names):
        raise ConfigError([Problem(None, "limits", repr(value), "a limit named twice")])
    return names
