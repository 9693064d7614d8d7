"""Each declared fleet-wide limit as it stands now: holders, waiters, recent use.

``agentcron limits`` prints it; the console's Fleet page shows the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentcron.jobs import JobSpec
from agentcron.limits.base import LimitStore
from agentcron.limits.declare import Limit


def declared_limits(specs: Iterable[JobSpec], limits_json: str = "") -> dict[str, Limit]:
    """The limits the jobs declare (LIMITS and ``AGENTCRON_LIMITS``), by name; with no job,
    those of ``limits_json`` alone (a ConfigError if it is wrong)."""
    declared: dict[str, Limit] = {}
    for spec in specs:
        for name, limit in spec.declared_limits.items():
            declared.setdefault(name, limit)
    if not declared and limits_json:
        from agentcron.limits.declare import named_limits

        declared = dict(named_limits([], limits_json))
    return declared


def limit_status(store: LimitStore, limits: Iterable[Limit]) -> list[dict[str, Any]]:
    """One JSON-ready row per limit: concurrency and its holders, waiters, requests and tokens
    granted in the current window (store errors propagate)."""
    out: list[dict[str, Any]] = []
    for limit in limits:
        holders = store.holders(limit) if limit.concurrency is not None else []
        requests, tokens = store.recent(limit)
        out.append({"limit": limit.name, "concurrency": limit.concurrency,
                    "holders": sorted(holders), "waiters": sorted(store.waiters(limit)),
                    "per_minute": limit.per_minute, "tokens_per_minute": limit.tokens_per_minute,
                    "period": limit.period, "requests": requests, "tokens": tokens})  # fmt: skip
    return out
