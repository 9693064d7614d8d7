"""Coalescing the lease acquires and releases of concurrent async runs on one event loop.

Every async run takes its job's lease before it claims the window and gives it back after the
completion. One thread hop and one Redis round trip each is most of what a guarded run costs on a
busy loop; here the acquires (and, separately, the releases) made while the previous batch was in
flight go to Redis in one pipelined round trip from a worker thread. Each request keeps its own
semantics: the scripts are the same as for a single call, and run one after another in Redis.
A store without batch methods (SQL, memory) gets its calls made one by one in that one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agentcron.batching import Coalescer
from agentcron.leases.base import Lease, LeaseStore

Acquire = tuple[str, str, float]
T = TypeVar("T")
R = TypeVar("R")


class LeaseBatcher:
    """Batches :meth:`LeaseStore.acquire` and :meth:`LeaseStore.release` on one event loop."""

    def __init__(self, store: LeaseStore, max_batch: int = 500, flushers: int = 2) -> None:
        self.store = store
        self._acquires: Coalescer[Acquire, Lease | None] = Coalescer(self._acquire_many,
                                                                     max_batch, flushers)
        self._releases: Coalescer[Lease, bool] = Coalescer(self._release_many, max_batch,
                                                           flushers)  # fmt: skip

    def _acquire_many(self, requests: Sequence[Acquire]) -> Sequence[Lease | None]:
        return self._each("acquire_many", lambda r: self.store.acquire(*r), requests)

    def _release_many(self, leases: Sequence[Lease]) -> Sequence[bool]:
        return self._each("release_many", self.store.release, leases)

    def _each(self, batch_method: str, single: Callable[[T], R], items: Sequence[T]) -> Sequence[R]:
        """The store's batch method for more than one item, when it has one; else one by one."""
        batch = getattr(self.store, batch_method, None)
        if batch is not None and len(items) > 1:
            result: Sequence[R] = batch(items)
            return result
        return [single(item) for item in items]

    async def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """:meth:`LeaseStore.acquire`, in the next batch."""
        return await self._acquires.submit((name, owner, ttl))

    async def release(self, lease: Lease) -> bool:
        """:meth:`LeaseStore.release`, in the next batch."""
        return await self._releases.submit(lease)

    def stats(self) -> dict[str, Any]:
        """How many batches were sent (for tests and benchmarks)."""
        return {"acquire_batches": self._acquires.batches,
                "release_batches": self._releases.batches}  # fmt: skip
