"""Coalescing the blocking calls of many coroutines on one event loop into batched calls.

Hundreds of runs share one event loop in an async worker, and each makes a few small blocking
calls (a ledger write, a lease acquire or release). Sent to a thread one by one they cost a thread
hop each and one round trip each. A :class:`Coalescer` collects the requests made while the
previous batches were being written, and hands them to one ``write(batch)`` call in a worker
thread (at most ``flushers`` batches in flight). A lone request pays nothing extra: it is
flushed at once. A failing batch fails every request in it with the same exception.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")
Src = TypeVar("Src")
Made = TypeVar("Made")


class PerLoop(Generic[Src, Made]):
    """One ``make(source)`` per running event loop (and per source): a batcher belongs to the
    loop whose coroutines it serves."""

    def __init__(self, make: Callable[[Src], Made]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Src, Made]] = (
            weakref.WeakKeyDictionary())

    def get(self, source: Src) -> Made:
        """The running loop's object for ``source`` (made on first use)."""
        loop = asyncio.get_running_loop()
        found = self._made.get(loop)
        if found is None or found[0] is not source:
            found = self._made[loop] = (source, self._make(source))
        return found[1]


class Coalescer(Generic[Req, Res]):
    """Requests waiting for the next batch, and the batches in flight."""

    def __init__(self, write: Callable[[Sequence[Req]], Sequence[Res]], max_batch: int,
                 flushers: int = 1) -> None:  # fmt: skip
        self.write = write
        self.max_batch = max_batch
        self.flushers = flushers
        self.waiting: list[tuple[Req, asyncio.Future[Res]]] = []
        self.running = 0
        self.batches = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def submit(self, request: Req) -> Res:
        """``request``'s result, written in the next batch."""
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
