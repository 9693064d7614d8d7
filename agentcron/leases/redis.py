"""Leases in Redis: ``SET NX PX`` + ``INCR`` in one Lua script, compare-and-extend/delete.

Keys (see :mod:`agentcron.keys`): ``agentcron:lease:{name}`` holds ``"{token}:{owner}"`` with a
PX TTL; ``agentcron:fence:{name}`` is the fencing counter (never expires, only grows). The scripts
live in ``acquire.lua``, ``renew.lua`` and ``release.lua`` beside this module and are shared by the
sync store and its asyncio twin. We do not use redis-py's ``Lock``: it keeps its token
thread-local, which breaks when one lease is renewed from another thread or coroutine.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import redis
import redis.asyncio
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from agentcron import keys
from agentcron.leases.base import Lease


@cache
def script_text(name: str) -> str:
    """The source of the Lua script ``{name}.lua`` shipped with this package."""
    return (files("agentcron.leases") / f"{name}.lua").read_text(encoding="utf-8")


def ttl_ms(ttl: float) -> int:
    """A TTL in seconds as Redis PX milliseconds (at least 1)."""
    if ttl <= 0:
        raise ValueError(f"lease ttl must be positive, got {ttl}")
    return max(1, round(ttl * 1000))


def lease_value(lease: Lease) -> str:
    """What the lease key holds: ``"{token}:{owner}"``."""
    return f"{lease.token}:{lease.owner}"


def parse_value(name: str, raw: bytes | str | None) -> Lease | None:
    """The lease stored as ``raw`` under ``name`` (None when the key is absent or malformed)."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    token, sep, owner = text.partition(":")
    if not sep or not token.isdigit():
        return None
    return Lease(name=name, owner=owner, token=int(token))


class RedisLeaseStore:
    """A :class:`~agentcron.leases.base.LeaseStore` on a ``redis.Redis`` client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._acquire = client.register_script(script_text("acquire"))
        self._renew = client.register_script(script_text("renew"))
        self._release = client.register_script(script_text("release"))

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` for ``ttl`` seconds if nobody holds it; None if somebody does."""
        token: Any = self._acquire(keys=[keys.lease(name), keys.fence(name)],
                                   args=[owner, ttl_ms(ttl)])
        return Lease(name=name, owner=owner, token=int(token)) if int(token) > 0 else None

    def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend our lease to ``ttl`` seconds from now; False if we lost it."""
        done: Any = self._renew(keys=[keys.lease(lease.name)],
                                args=[lease_value(lease), ttl_ms(ttl)])
        return int(done) == 1

    def release(self, lease: Lease) -> bool:
        """Compare-and-delete; False if the lease is no longer ours."""
        done: Any = self._release(keys=[keys.lease(lease.name)], args=[lease_value(lease)])
        return int(done) == 1

    def acquire_many(self, requests: Sequence[tuple[str, str, float]]) -> list[Lease | None]:
        """:meth:`acquire` for many ``(name, owner, ttl)`` in one pipelined round trip."""
        calls = [(self._acquire, [keys.lease(name), keys.fence(name)], [owner, ttl_ms(ttl)])
                 for name, owner, ttl in requests]  # fmt: skip
        return [Lease(name=name, owner=owner, token=int(token)) if int(token) > 0 else None
                for (name, owner, _), token in zip(requests, self._pipelined(calls),
                                                   strict=True)]  # fmt: skip

    def renew_many(self, leases: Sequence[tuple[Lease, float]]) -> list[bool]:
        """Compare-and-extend many leases in one pipelined round trip."""
        calls = [(self._renew, [keys.lease(lease.name)], [lease_value(lease), ttl_ms(ttl)])
                 for lease, ttl in leases]  # fmt: skip
        return [int(done) == 1 for done in self._pipelined(calls)]

    def release_many(self, leases: Sequence[Lease]) -> list[bool]:
        """Compare-and-delete many leases in one pipelined round trip."""
        calls = [(self._release, [keys.lease(lease.name)], [lease_value(lease)])
                 for lease in leases]  # fmt: skip
        return [int(done) == 1 for done in self._pipelined(calls)]

    def _pipelined(self, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        return run_scripts(self.client, calls)

    def holder(self, name: str) -> Lease | None:
        """The live lease on ``name``, if any."""
        raw: Any = self.client.get(keys.lease(name))
        return parse_value(name, raw)

    def next_token(self, name: str) -> int:
        """A fresh fencing token for ``name`` without taking the lease."""
        token: Any = self.client.incr(keys.fence(name))
        return int(token)


class AsyncRedisLeaseStore:
    """The asyncio twin of :class:`RedisLeaseStore` (same scripts, methods are coroutines)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self._acquire = client.register_script(script_text("acquire"))
        self._renew = client.register_script(script_text("renew"))
        self._release = client.register_script(script_text("release"))

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` for ``ttl`` seconds if nobody holds it; None if somebody does."""
        token: Any = await self._acquire(keys=[keys.lease(name), keys.fence(name)],
                                         args=[owner, ttl_ms(ttl)])
        return Lease(name=name, owner=owner, token=int(token)) if int(token) > 0 else None

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend our lease to ``ttl`` seconds from now; False if we lost it."""
        done: Any = await self._renew(keys=[keys.lease(lease.name)],
                                      args=[lease_value(lease), ttl_ms(ttl)])
        return int(done) == 1

    async def release(self, lease: Lease) -> bool:
        """Compare-and-delete; False if the lease is no longer ours."""
        done: Any = await self._release(keys=[keys.lease(lease.name)], args=[lease_value(lease)])
        return int(done) == 1

    async def holder(self, name: str) -> Lease | None:
        """The live lease on ``name``, if any."""
        raw: Any = await self.client.get(keys.lease(name))
        return parse_value(name, raw)

    async def next_token(self, name: str) -> int:
        """A fresh fencing token for ``name`` without taking the lease."""
        token: Any = await self.client.incr(keys.fence(name))
        return int(token)


def run_scripts(client: redis.Redis, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
    """Run the scripts by SHA in one non-transactional pipeline; when Redis lost its script
    cache (a restart), NOSCRIPT means nothing ran: load them and send the batch again. Raises
    the first error reply; returns every script's result in order."""
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for script, names, args in calls:
            pipe.evalsha(script.sha, len(names), *names, *args)
        results = pipe.execute(raise_on_error=False)
        if not any(isinstance(r, NoScriptError) for r in results) or attempt == 2:
            break
        for script in {script for script, _, _ in calls}:
            client.script_load(script.script)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return list(results)
