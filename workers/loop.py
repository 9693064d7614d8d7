"""The asyncio pool's event loop thread, and how a task body hands its coroutine to the pool.

:class:`LoopThread` runs one event loop forever in a daemon thread (the asyncio pool's, and a
fallback one for a coroutine deferred outside that pool). :func:`defer` is what a task body
marked ``runs_on_loop`` calls with its coroutine (see :mod:`workers.pool`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar


class _Parking(threading.local):
    """Where the task body that this thread runs right now parks its coroutine: open only while
    the pool runs Celery's tracer for a ``runs_on_loop`` task (a thread-local, not a context
    variable per run: a context variable set in a run's task made a token and a new context
    mapping for every run in flight)."""

    open = False
    coro: Coroutine[Any, Any, Any] | None = None


_PARKING = _Parking()
T = TypeVar("T")


def run_parked(body: Callable[[], T]) -> tuple[T, Coroutine[Any, Any, Any] | None]:
    """``body()``'s result and the coroutine it handed to :func:`defer` while it ran (None if
    it deferred nothing); a coroutine parked by a body that then raised is closed."""
    _PARKING.open, _PARKING.coro = True, None
    try:
        ret = body()
    except BaseException:
        if _PARKING.coro is not None:
            _PARKING.coro.close()
        raise
    finally:
        coro, _PARKING.open, _PARKING.coro = _PARKING.coro, False, None
    return ret, coro


class LoopThread:
    """One asyncio event loop running forever in a dedicated daemon thread."""

    def __init__(self, name: str = "agentcron-loop", executor_threads: int = 32) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor_threads = executor_threads
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread and wait until its loop runs."""
        self._thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(self.executor_threads, "agentcron-io"))
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Schedule ``coro`` on the loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and join its thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)


_FALLBACK: LoopThread | None = None
_FALLBACK_LOCK = threading.Lock()


def defer(coro: Coroutine[Any, Any, Any]) -> Any:
    """Hand ``coro`` to the asyncio pool; return what the task body should return.

    Under :class:`AsyncIOPool` the coroutine is parked and awaited by the pool after Celery's
    tracer returns (this returns None). Anywhere else (a prefork or solo worker, an eager call)
    it runs to completion on this process's one background loop and its result is returned.
    """
    if _PARKING.open and _PARKING.coro is None:
        _PARKING.coro = coro
        return None
    global _FALLBACK
    with _FALLBACK_LOCK:
        if _FALLBACK is None:
            _FALLBACK = LoopThread("agentcron-fallback-loop")
            _FALLBACK.start()
    return _FALLBACK.submit(coro).result()
