"""Coalescing the ledger writes of concurrent async runs: one transaction per batch.

Hundreds of runs share one event loop in an async worker. Each claim and each completion is a
small write transaction; committed one by one they queue on the database (SQLite has one writer;
PostgreSQL pays a WAL flush per commit). The batcher collects the claims (and, separately, the
completions) made while the previous batches were being written, and writes them together in ONE
transaction from a worker thread (one batch at a time on SQLite, up to three at once on
PostgreSQL). A lone run pays nothing extra: its request is flushed at once.
Each request keeps its own semantics (fenced on its own token); a failing batch fails every
request in it, and the guard retries each one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from agentcron.ledger.records import ClaimRequest, CompleteRequest
from agentcron.ledger.store import Claim, Ledger

Req = TypeVar("Req")
Res = TypeVar("Res")


class _Queue(Generic[Req, Res]):
    """Requests waiting for the next batch, and the one flush in flight."""

    def __init__(self, write: Callable[[Sequence[Req]], list[Res]], max_batch: int,
                 flushers: int = 1) -> None:  # fmt: skip
        self.write = write
        self.max_batch = max_batch
        self.flushers = flushers
        self.waiting: list[tuple[Req, asyncio.Future[Res]]] = []
        self.running = 0
        self.batches = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def submit(self, request: Req) -> Res:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Res] = loop.create_future()
        self.waiting.append((request, future))
        if self.running < self.flushers:
            self.running += 1
            task = loop.create_task(self._flush())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _flush(self) -> None:
        try:
            while self.waiting:
                batch = self.waiting[: self.max_batch]
                del self.waiting[: self.max_batch]
                self.batches += 1
                try:
                    results = await asyncio.to_thread(self.write, [r for r, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.running -= 1


class LedgerBatcher:
    """Batches :meth:`Ledger.claim_many` and :meth:`Ledger.complete_many` on one event loop."""

    def __init__(self, ledger: Ledger, max_batch: int = 500) -> None:
        self.ledger = ledger
        # SQLite has one writer: one flush at a time. PostgreSQL takes several at once.
        flushers = 1 if ledger.engine.dialect.name == "sqlite" else 3
        self._claims: _Queue[ClaimRequest, Claim] = _Queue(ledger.claim_many, max_batch,
                                                           flushers)  # fmt: skip
        self._completions: _Queue[CompleteRequest, bool] = _Queue(ledger.complete_many,
                                                                  max_batch, flushers)  # fmt: skip

    async def claim(self, request: ClaimRequest) -> Claim:
        """Claim a window in the next batch."""
        return await self._claims.submit(request)

    async def complete(self, request: CompleteRequest) -> bool:
        """Complete a run in the next batch (fenced on its token)."""
        return await self._completions.submit(request)

    def stats(self) -> dict[str, Any]:
        """How many batches were written (for tests and benchmarks)."""
        return {"claim_batches": self._claims.batches,
                "complete_batches": self._completions.batches}  # fmt: skip
