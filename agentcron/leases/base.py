"""The lease protocol.

A lease is held by one *owner* (a random string per run attempt) under a *name* (a job name, or
a window key for jobs that allow overlap) until it expires, unless renewed. Each acquisition gets
a *fencing token* from a counter that only grows, so a stale holder's writes can be refused.
Release and renewal are compare-and-X on the owner: a holder whose lease expired and was taken
over cannot release or extend the new holder's lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Lease:
    """A granted lease."""

    name: str
    owner: str
    token: int


@runtime_checkable
class LeaseStore(Protocol):
    """Where leases live (Redis, SQL, memory). All methods are thread-safe."""

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` for ``ttl`` seconds if nobody holds it; None if somebody does."""
        ...

    def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend a lease we still hold to ``ttl`` seconds from now; False if we lost it."""
        ...

    def release(self, lease: Lease) -> bool:
        """Give the lease up if we still hold it (compare-and-delete); False otherwise."""
        ...

    def holder(self, name: str) -> Lease | None:
        """The live lease on ``name``, if any."""
        ...

    def next_token(self, name: str) -> int:
        """A fresh fencing token for ``name`` without taking the lease."""
        ...


@runtime_checkable
class AsyncLeaseStore(Protocol):
    """:class:`~agentcron.leases.base.LeaseStore` with coroutine methods."""

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` for ``ttl`` seconds if nobody holds it; None if somebody does."""
        ...

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend a lease we still hold to ``ttl`` seconds from now; False if we lost it."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Give the lease up if we still hold it (compare-and-delete); False otherwise."""
        ...

    async def holder(self, name: str) -> Lease | None:
        """The live lease on ``name``, if any."""
        ...

    async def next_token(self, name: str) -> int:
        """A fresh fencing token for ``name`` without taking the lease."""
        ...
