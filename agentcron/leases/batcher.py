"""Coalescing the lease acquires and releases of concurrent async runs on one event loop.

Every async run takes its job's lease before it claims the window and gives it back after the
completion. One thread hop and one Redis round trip each is most of what a guarded run costs on a
busy loop; here the acquires (and, separately, the releases) made while the previous batch was in
flight go to Redis in one pipelined round trip from a worker thread. Each request keeps its own
semantics: the scripts are the same as for a single call, and run one after another in Redis.
A store without batch methods (SQL, memory) gets its calls made one by one in that one thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentcron.batching import Coalescer
from agentcron.leases.base import Lease, LeaseStore

Acquire = tuple[str, str, float]


class LeaseBatcher:
    """Batches :meth:`LeaseStore.acquire` and :meth:`LeaseStore.release` on one event loop."""

    def __init__(self, store: LeaseStore, max_batch: int = 500, flushers: int = 2) -> None:
        self.store = store
        self._acquires: Coalescer[Acquire, Lease | None] = Coalescer(self._acquire_many,
                                                                     max_batch, flushers)
        self._releases: Coalescer[Lease, bool] = Coalescer(self._release_many, max_batch,
                                                           flushers)  # fmt: skip

    def _acquire_many(self, requests: Sequence[Acquire]) -> Sequence[Lease | None]:
        batch = getattr(self.store, "acquire_many", None)
        if batch is not None and len(requests) > 1:
            result: Sequence[Lease | None] = batch(requests)
            return result
        return [self.store.acquire(*request) for request in requests]

    def _release_many(self, leases: Sequence[Lease]) -> Sequence[bool]:
        batch = getattr(self.store, "release_many", None)
        if batch is not None and len(leases) > 1:
            result: Sequence[bool] = batch(leases)
            return result
        return [self.store.release(lease) for lease in leases]

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
