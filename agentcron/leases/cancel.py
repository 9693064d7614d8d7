"""Cooperative cancellation signals for the ``cancel_other`` overlap policy.

A newcomer that finds job ``J`` held by the lease with token ``T`` calls ``request(J, T)``; the
holder's renewer polls ``requested(J, T)`` on every beat and, when true, asks its run to stop.
Signals name the *token*, so a request aimed at an old holder never cancels a newer one. Each
signal expires (``ttl`` seconds, default one hour) so nothing is left behind.

Implementations:

- Redis: the key ``agentcron:cancel:{job}`` holds the token to cancel, with a PX TTL.
- SQL: a row of the ``leases`` table named ``cancel:{job}`` (job names cannot contain ``:``, so it
  never collides with a lease), ``token`` = the token to cancel, ``expires_at`` = when the signal
  lapses, ``owner`` = ``"cancel"``. No schema change.
- Memory: a dict, time from the injected Clock.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import redis
import redis.asyncio
import sqlalchemy as sa

from agentcron import keys
from agentcron.clock import Clock
from agentcron.leases.redis import ttl_ms
from agentcron.leases.sql import LEASES, ensure_row
from agentcron.ledger.engine import READ_ONLY

DEFAULT_SIGNAL_TTL = 3600.0


@runtime_checkable
class CancelSignals(Protocol):
    """Where cancellation requests for lease holders are posted and polled."""

    def request(self, job: str, token: int) -> None:
        """Ask the holder of ``job``'s lease with fencing token ``token`` to stop."""
        ...

    def requested(self, job: str, token: int) -> bool:
        """Was a cancel requested for the holder of ``job`` with this token?"""
        ...


@runtime_checkable
class AsyncCancelSignals(Protocol):
    """:class:`CancelSignals` with coroutine methods (for the asyncio worker)."""

    async def request(self, job: str, token: int) -> None:
        """Ask the holder of ``job``'s lease with fencing token ``token`` to stop."""
        ...

    async def requested(self, job: str, token: int) -> bool:
        """Was a cancel requested for the holder of ``job`` with this token?"""
        ...


def _matches(raw: Any, token: int) -> bool:
    if raw is None:
        return False
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return text == str(token)


class RedisCancelSignals:
    """Cancel signals in the Redis key ``agentcron:cancel:{job}`` (value = token, PX TTL)."""

    def __init__(self, client: redis.Redis, ttl: float = DEFAULT_SIGNAL_TTL) -> None:
        self.client = client
        self.ttl = ttl

    def request(self, job: str, token: int) -> None:
        """Ask the holder of ``job``'s lease with fencing token ``token`` to stop."""
        self.client.set(keys.cancel(job), str(token), px=ttl_ms(self.ttl))

    def requested(self, job: str, token: int) -> bool:
        """Was a cancel requested for the holder of ``job`` with this token?"""
        return _matches(self.client.get(keys.cancel(job)), token)

    def requested_many(self, holders: list[tuple[str, int]]) -> list[bool]:
        """:meth:`requested` for many holders in one MGET."""
        if not holders:
            return []
        raw: Any = self.client.mget([keys.cancel(job) for job, _ in holders])
        return [_matches(value, token) for value, (_, token) in zip(raw, holders, strict=True)]


class AsyncRedisCancelSignals:
    """The asyncio twin of :class:`RedisCancelSignals`."""

    def __init__(self, client: redis.asyncio.Redis, ttl: float = DEFAULT_SIGNAL_TTL) -> None:
        self.client = client
        self.ttl = ttl

    async def request(self, job: str, token: int) -> None:
        """Ask the holder of ``job``'s lease with fencing token ``token`` to stop."""
        await self.client.set(keys.cancel(job), str(token), px=ttl_ms(self.ttl))

    async def requested(self, job: str, token: int) -> bool:
        """Was a cancel requested for the holder of ``job`` with this token?"""
        return _matches(await self.client.get(keys.cancel(job)), token)


def signal_row(job: str) -> str:
    """The ``leases`` row name that carries ``job``'s cancel signal."""
    return f"cancel:{job}"


class SqlCancelSignals:
    """Cancel signals as rows ``cancel:{job}`` of the ``leases`` table."""

    def __init__(self, engine: sa.Engine, clock: Clock, ttl: float = DEFAULT_SIGNAL_TTL) -> None:
        self.engine = engine
        self.clock = clock
        self.ttl = ttl

    def request(self, job: str, token: int) -> None:
        """Ask the holder of ``job``'s lease with fencing token ``token`` to stop."""
        expires = self.clock.now() + timedelta(seconds=self.ttl)
        stmt = (
            sa.update(LEASES).where(LEASES.c.name == signal_row(job))
            .values(owner="cancel", token=token, expires_at=expires)
        )
        with self.engine.begin() as conn:
            ensure_row(conn, signal_row(job))
            conn.execute(stmt)

    def requested(self, job: str, token: int) -> bool:
        """Was a cancel requested for the holder of ``job`` with this token?"""
        stmt = sa.select(LEASES.c.name).where(
            LEASES.c.name == signal_row(job), LEASES.c.token == token,
            LEASES.c.expires_at > self.clock.now(),
        )
        with self.engine.connect().execution_options(**READ_ONLY) as conn:
            return conn.execute(stmt).first() is not None


class MemoryCancelSignals:
    """Cancel signals in memory (thread-safe), expiring on ``clock.monotonic()``."""

    def __init__(self, clock: Clock, ttl: float = DEFAULT_SIGNAL_TTL) -> None:
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._signals: dict[str, tuple[int, float]] = {}

    def request(self, job: str, token: int) -> None:
        """Ask the holder of ``job``'s lease with fencing token ``token`` to stop."""
        with self._lock:
            self._signals[job] = (token, self.clock.monotonic() + self.ttl)

    def requested(self, job: str, token: int) -> bool:
        """Was a cancel requested for the holder of ``job`` with this token?"""
        with self._lock:
            signal = self._signals.get(job)
        return signal is not None and signal[0] == token and signal[1] > self.clock.monotonic()
