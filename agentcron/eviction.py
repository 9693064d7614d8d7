"""Refusing an evicting Redis at start (issue 20, item 3).

A Redis whose ``maxmemory-policy`` is anything but ``noeviction`` drops keys when memory fills:
queued run messages, kombu's unacked records, leases (they carry a TTL, so even the ``volatile-*``
policies take them). Beat and workers check every Redis they use (the broker URL and
``AGENTCRON_REDIS_URL``) before they start and refuse an evicting one with one line naming the
setting, unless ``AGENTCRON_ALLOW_EVICTION=1``; then they start with a warning. A Redis that
cannot be asked (down, or ``CONFIG`` disabled by a managed service) is a warning, not a refusal.
"""

from __future__ import annotations

import logging

from agentcron.settings import Settings, is_redis_url, redact_url
from agentcron.timeouts import redis_client

log = logging.getLogger("agentcron.eviction")
SAFE_POLICIES = ("noeviction",)


class EvictionRefused(Exception):
    """A Redis this process would use can evict keys, and eviction is not allowed."""


def redis_urls(settings: Settings) -> list[str]:
    """Every Redis URL ``settings`` make this process use (broker, leases), once each."""
    urls = [u for u in (settings.broker_url, settings.redis_url) if is_redis_url(u)]
    return list(dict.fromkeys(urls))


def eviction_warning(redis_url: str) -> str | None:
    """Why the Redis at ``redis_url`` may evict keys (or could not be asked), else None."""
    import redis

    client = redis_client(redis_url)
    try:
        policy = str(client.config_get("maxmemory-policy").get("maxmemory-policy", ""))
    except redis.RedisError as exc:
        return f"could not read maxmemory-policy of {redact_url(redis_url)}: {exc}"
    finally:
        client.close()
    if policy in SAFE_POLICIES:
        return None
    return (f"Redis {redact_url(redis_url)} has maxmemory-policy={policy}: it can evict queued "
            "messages and leases; set maxmemory-policy noeviction")


def check_eviction(settings: Settings) -> None:
    """Raise :class:`EvictionRefused` if a Redis of ``settings`` can evict keys and
    ``AGENTCRON_ALLOW_EVICTION`` is not set; log a warning for what cannot be checked."""
    for url in redis_urls(settings):
        problem = eviction_warning(url)
        if problem is None:
            continue
        if problem.startswith("could not read"):
            log.warning("%s; eviction not checked", problem)
        elif settings.allow_eviction:
            log.warning("%s (started anyway: AGENTCRON_ALLOW_EVICTION=1)", problem)
        else:
            raise EvictionRefused(f"refusing to start: {problem}, or set "
                                  "AGENTCRON_ALLOW_EVICTION=1 to run anyway")  # fmt: skip


def exit_if_evicting(settings: Settings) -> None:
    """:func:`check_eviction`, or one line on stderr and exit status 2 (bad configuration)."""
    import sys

    try:
        check_eviction(settings)
    except EvictionRefused as exc:
        print(f"agentcron: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
