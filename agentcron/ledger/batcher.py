"""Coalescing the ledger writes of concurrent async runs: one transaction per batch.

Hundreds of runs share one event loop in an async worker. Each claim and each completion is a
small write transaction; committed one by one they queue on the database (SQLite has one writer;
PostgreSQL pays a WAL flush per commit). The batcher collects the claims (and, separately, the
completions) made while the previous batches were being written, and writes them together in ONE
transaction from a worker thread (one batch at a time on SQLite, up to three at once on
PostgreSQL; see :mod:`agentcron.batching`). A lone run pays nothing extra.
Each request keeps its own semantics (fenced on its own token); a failing batch fails every
request in it, and the guard retries each one.
"""

from __future__ import annotations

from typing import Any

from agentcron.batching import Coalescer
from agentcron.ledger.records import Claim, ClaimRequest, CompleteRequest
from agentcron.ledger.store import Ledger


class LedgerBatcher:
    """Batches :meth:`Ledger.claim_many` and :meth:`Ledger.complete_many` on one event loop."""

    def __init__(self, ledger: Ledger, max_batch: int = 500) -> None:
        self.ledger = ledger
        # SQLite has one writer: one flush at a time. PostgreSQL takes several at once.
        flushers = 1 if ledger.engine.dialect.name == "sqlite" else 3
        self._claims: Coalescer[ClaimRequest, Claim] = Coalescer(ledger.claim_many, max_batch,
                                                                 flushers)  # fmt: skip
        self._completions: Coalescer[CompleteRequest, bool] = Coalescer(ledger.complete_many,
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
