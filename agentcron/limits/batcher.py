"""Coalescing the limit calls of concurrent async runs on one event loop (as leases do).

Holding a limit costs a run a slot acquire and a release (and a rate take, for rate limits).
Made one by one on a busy loop they block it for a round trip each; here the requests made
while the previous batch was in flight go to the store in one pipelined round trip from a worker
thread (:class:`agentcron.batching.Coalescer`). Each keeps the semantics of its single call (the
same scripts, run one after another in Redis). A store without batch methods (SQL) gets its
calls made one by one in that thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agentcron.batching import Coalescer
from agentcron.limits.base import LimitStore
from agentcron.limits.declare import Limit

Slot = tuple[Limit, str]
Take = tuple[Limit, int]
T = TypeVar("T")
R = TypeVar("R")


class LimitBatcher:
    """Batches slot acquires, releases and rate takes of one store on one event loop."""

    def __init__(self, store: LimitStore, max_batch: int = 500, flushers: int = 2) -> None:
        self.store = store
        self._acquires: Coalescer[Slot, bool] = Coalescer(self._acquire_many, max_batch, flushers)
        self._releases: Coalescer[Slot, None] = Coalescer(self._release_many, max_batch, flushers)
        self._takes: Coalescer[Take, float | Exception] = Coalescer(self._take_many, max_batch,
                                                                    flushers)  # fmt: skip

    def _each(self, method: str, single: Callable[[T], R], items: Sequence[T]) -> Sequence[R]:
        batch = getattr(self.store, method, None)
        if batch is not None and len(items) > 1:
            result: Sequence[R] = batch(items)
            return result
        return [single(item) for item in items]

    def _acquire_many(self, slots: Sequence[Slot]) -> Sequence[bool]:
        return self._each("acquire_slots", lambda s: self.store.acquire_slot(*s), slots)

    def _release_many(self, slots: Sequence[Slot]) -> Sequence[None]:
        return self._each("release_slots", lambda s: self.store.release_slot(*s), slots)

    def _take_many(self, takes: Sequence[Take]) -> Sequence[float | Exception]:
        def one(take: Take) -> float | Exception:
            try:
                return self.store.take_rate(*take)
            except ValueError as exc:  # one request's error, not the batch's
                return exc

        return self._each("take_rates", one, takes)

    async def acquire_slot(self, limit: Limit, holder: str) -> bool:
        return await self._acquires.submit((limit, holder))

    async def release_slot(self, limit: Limit, holder: str) -> None:
        await self._releases.submit((limit, holder))

    async def take_rate(self, limit: Limit, tokens: int) -> float:
        result = await self._takes.submit((limit, tokens))
        if isinstance(result, Exception):
            raise result
        return result

    def stats(self) -> dict[str, Any]:
        return {"acquire_batches": self._acquires.batches, "release_batches":
                self._releases.batches, "take_batches": self._takes.batches}  # fmt: skip
