"""Pick the lease store and cancel signals the settings ask for (Redis or SQL).

``settings.lease_backend == "redis"`` ⇒ Redis at ``settings.redis_url``; otherwise the SQL
``leases`` table on the ledger's engine (which the caller passes in). The async variants return
coroutine-method twins: native ones for Redis, thread-offloading adapters for SQL.
"""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio
import sqlalchemy as sa

from agentcron.clock import Clock
from agentcron.leases.base import AsyncLeaseStore, Lease, LeaseStore
from agentcron.leases.cancel import (
    AsyncCancelSignals,
    AsyncRedisCancelSignals,
    CancelSignals,
    RedisCancelSignals,
    SqlCancelSignals,
)
from agentcron.leases.redis import AsyncRedisLeaseStore, RedisLeaseStore
from agentcron.leases.sql import SqlLeaseStore
from agentcron.settings import Settings

SOCKET_TIMEOUT = 5.0
"""Seconds a lease command waits on Redis (a stalled Redis fails the call instead of hanging a
run forever; a renewal that fails stops the run only once its lease would have expired)."""


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=SOCKET_TIMEOUT,
                                socket_connect_timeout=SOCKET_TIMEOUT)  # fmt: skip


def _aredis(settings: Settings) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(settings.redis_url, socket_timeout=SOCKET_TIMEOUT,
                                        socket_connect_timeout=SOCKET_TIMEOUT)  # fmt: skip


def _need_engine(engine: sa.Engine | None) -> sa.Engine:
    if engine is None:
        raise ValueError("SQL leases need the ledger's engine (lease_backend is 'sql')")
    return engine


def open_lease_store(settings: Settings, engine: sa.Engine | None, clock: Clock) -> LeaseStore:
    """The lease store for ``settings``: Redis, or SQL on ``engine``."""
    if settings.lease_backend == "redis":
        return RedisLeaseStore(_redis(settings))
    return SqlLeaseStore(_need_engine(engine), clock)


def open_cancel_signals(
    settings: Settings, engine: sa.Engine | None, clock: Clock
) -> CancelSignals:
    """The cancel signals for ``settings``: Redis keys, or rows of the SQL ``leases`` table."""
    if settings.lease_backend == "redis":
        return RedisCancelSignals(_redis(settings))
    return SqlCancelSignals(_need_engine(engine), clock)


def open_async_lease_store(
    settings: Settings, engine: sa.Engine | None, clock: Clock
) -> AsyncLeaseStore:
    """The asyncio lease store for ``settings`` (call inside the event loop that will use it)."""
    if settings.lease_backend == "redis":
        return AsyncRedisLeaseStore(_aredis(settings))
    return ThreadedLeaseStore(SqlLeaseStore(_need_engine(engine), clock))


def open_async_cancel_signals(
    settings: Settings, engine: sa.Engine | None, clock: Clock
) -> AsyncCancelSignals:
    """The asyncio cancel signals for ``settings``."""
    if settings.lease_backend == "redis":
        return AsyncRedisCancelSignals(_aredis(settings))
    return ThreadedCancelSignals(SqlCancelSignals(_need_engine(engine), clock))


class ThreadedLeaseStore:
    """An :class:`AsyncLeaseStore` over a sync store; each call runs in ``asyncio.to_thread``."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """See :meth:`LeaseStore.acquire`."""
        return await asyncio.to_thread(self.store.acquire, name, owner, ttl)

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """See :meth:`LeaseStore.renew`."""
        return await asyncio.to_thread(self.store.renew, lease, ttl)

    async def release(self, lease: Lease) -> bool:
        """See :meth:`LeaseStore.release`."""
        return await asyncio.to_thread(self.store.release, lease)

    async def holder(self, name: str) -> Lease | None:
        """See :meth:`LeaseStore.holder`."""
        return await asyncio.to_thread(self.store.holder, name)

    async def next_token(self, name: str) -> int:
        """See :meth:`LeaseStore.next_token`."""
        return await asyncio.to_thread(self.store.next_token, name)


class ThreadedCancelSignals:
    """An :class:`AsyncCancelSignals` over sync ones; each call runs in ``asyncio.to_thread``."""

    def __init__(self, signals: CancelSignals) -> None:
        self.signals = signals

    async def request(self, job: str, token: int) -> None:
        """See :meth:`CancelSignals.request`."""
        await asyncio.to_thread(self.signals.request, job, token)

    async def requested(self, job: str, token: int) -> bool:
        """See :meth:`CancelSignals.requested`."""
        return await asyncio.to_thread(self.signals.requested, job, token)
