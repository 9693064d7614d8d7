"""Keep a lease alive while a run goes on; notice when it is lost or a cancel is requested.

:class:`ThreadRenewer` (a context manager; a daemon thread) serves sync agents,
:class:`TaskRenewer` (an async context manager; an asyncio task) serves async agents. Both renew
every ``ttl/3`` and poll the cancel signals every ``poll_interval`` (default ``ttl/3``).

- A renewal that returns False (the lease expired or somebody else holds it) marks the lease lost
  at once; a renewal that *raises* marks it lost only once the lease would have expired (``ttl``
  after the start of the last successful renewal). Either way ``on_lost(reason)`` is called once,
  ``.lost`` becomes True and renewal stops. After an error the renewal is retried on every beat
  (every ``poll_interval``) until it succeeds or the lease would have expired. The guard uses
  ``on_lost`` to request cancellation; the completion is fenced anyway.
- A cancel request for our token calls ``on_cancel(reason)`` once and sets ``.cancelled``; the
  lease keeps being renewed until the run stops and the guard releases it.

Waiting: the loops wait on an Event with a timeout (``threading.Event.wait`` /
``asyncio.Event`` + ``wait_for``), so leaving the context stops them at once. *When* a renewal is
due and whether the lease would have expired is measured on the injected ``clock.monotonic()``.
``beat()`` runs one step by hand, which is how unit tests drive a renewer with a FrozenClock.
Leaving the context does not release the lease: the guard does that after the run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from agentcron.clock import Clock
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.cancel import AsyncCancelSignals, CancelSignals

log = logging.getLogger(__name__)

Callback = Callable[[str], None]


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


class _State:
    """What both renewers share: due times, the lost/cancelled verdicts, the callbacks."""

    def __init__(self, lease: Lease, ttl: float, clock: Clock, on_lost: Callback | None,
                 on_cancel: Callback | None, poll_interval: float | None) -> None:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        self.lease, self.ttl, self.clock = lease, ttl, clock
        self.on_lost, self.on_cancel = on_lost, on_cancel
        self.renew_every = ttl / 3
        self.poll_every = min(poll_interval or self.renew_every, self.renew_every)
        self.last_ok = clock.monotonic()
        self.next_renew = self.last_ok + self.renew_every
        self.lost = False
        self.cancelled = False

    def renewal_due(self) -> bool:
        # A little slack so that a wake-up a hair early does not skip a whole renewal period.
        slack = self.poll_every / 10
        return not self.lost and self.clock.monotonic() >= self.next_renew - slack

    def renewed(self, started: float, ok: bool | None, error: BaseException | None) -> None:
        """Record one renewal attempt (``ok`` None when it raised ``error``)."""
        self.next_renew = self.clock.monotonic() + self.renew_every
        if ok:
            self.last_ok = started
            return
        self.next_renew = self.clock.monotonic()  # after an error, retry on the next beat
        if ok is False:
            self._lose(f"lease {self.lease.name} (token {self.lease.token}) was lost")
            return
        log.warning("renewing lease %s (token %s) failed: %r",
                    self.lease.name, self.lease.token, error)
        if self.clock.monotonic() - self.last_ok >= self.ttl:
            self._lose(f"lease {self.lease.name} (token {self.lease.token}) expired: "
                       f"renewal failing ({type(error).__name__})")

    def polled(self, requested: bool) -> None:
        if requested and not self.cancelled:
            self.cancelled = True
            reason = f"cancel requested for {self.lease.name} (token {self.lease.token})"
            _call_back(self.on_cancel, reason)

    def _lose(self, reason: str) -> None:
        if not self.lost:
            self.lost = True
            _call_back(self.on_lost, reason)


def _call_back(callback: Callback | None, reason: str) -> None:
    if callback is None:
        return
    try:
        callback(reason)
    except Exception:
        log.exception("lease callback failed")


class ThreadRenewer:
    """Renew ``lease`` from a daemon thread while the ``with`` block runs."""

    def __init__(self, store: LeaseStore, lease: Lease, ttl: float, *, clock: Clock,
                 on_lost: Callback | None = None, cancel_signals: CancelSignals | None = None,
                 on_cancel: Callback | None = None,
                 poll_interval: float | None = None) -> None:
        self.store = store
        self.cancel_signals = cancel_signals
        self._state = _State(lease, ttl, clock, on_lost, on_cancel, poll_interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"lease-renewer:{lease.name}")

    @property
    def lost(self) -> bool:
        """True once the lease is known to be lost."""
        return self._state.lost

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested for our token."""
        return self._state.cancelled

    def beat(self) -> None:
        """One step: poll the cancel signal, renew if due."""
        state = self._state
        if self.cancel_signals is not None and not state.cancelled:
            try:
                state.polled(self.cancel_signals.requested(state.lease.name, state.lease.token))
            except Exception as exc:
                log.warning("polling cancel signal of %s failed: %r", state.lease.name, exc)
        if state.renewal_due():
            started = state.clock.monotonic()
            try:
                ok: bool | None = self.store.renew(state.lease, state.ttl)
                error: BaseException | None = None
            except Exception as exc:
                ok, error = None, exc
            state.renewed(started, ok, error)

    def _loop(self) -> None:
        while not self._stop.wait(self._state.poll_every) and not self._state.lost:
            self.beat()

    def __enter__(self) -> ThreadRenewer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self._state.ttl)


async def _maybe_await(function: Callable[..., Any], *args: Any) -> Any:
    """Await ``function(*args)`` if it is a coroutine function, else run it in a thread."""
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    return await asyncio.to_thread(function, *args)


class TaskRenewer:
    """Renew ``lease`` from an asyncio task while the ``async with`` block runs.

    ``store`` and ``cancel_signals`` may be async (e.g. AsyncRedisLeaseStore) or sync (then each
    call runs in ``asyncio.to_thread``).
    """

    def __init__(self, store: LeaseStore | AsyncLeaseStore, lease: Lease, ttl: float, *,
                 clock: Clock, on_lost: Callback | None = None,
                 cancel_signals: CancelSignals | AsyncCancelSignals | None = None,
                 on_cancel: Callback | None = None,
                 poll_interval: float | None = None) -> None:
        self.store = store
        self.cancel_signals = cancel_signals
        self._state = _State(lease, ttl, clock, on_lost, on_cancel, poll_interval)
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def lost(self) -> bool:
        """True once the lease is known to be lost."""
        return self._state.lost

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested for our token."""
        return self._state.cancelled

    async def beat(self) -> None:
        """One step: poll the cancel signal, renew if due."""
        state = self._state
        if self.cancel_signals is not None and not state.cancelled:
            try:
                requested = await _maybe_await(self.cancel_signals.requested,
                                               state.lease.name, state.lease.token)
                state.polled(bool(requested))
            except Exception as exc:
                log.warning("polling cancel signal of %s failed: %r", state.lease.name, exc)
        if state.renewal_due():
            started = state.clock.monotonic()
            try:
                ok: bool | None = bool(await _maybe_await(self.store.renew, state.lease, state.ttl))
                error: BaseException | None = None
            except Exception as exc:
                ok, error = None, exc
            state.renewed(started, ok, error)

    async def _loop(self, stop: asyncio.Event) -> None:
        while not self._state.lost:
            try:
                await asyncio.wait_for(stop.wait(), self._state.poll_every)
                return
            except TimeoutError:
                await self.beat()

    async def __aenter__(self) -> TaskRenewer:
        self._stop = asyncio.Event()
        name = f"lease-renewer:{self._state.lease.name}"
        self._task = asyncio.create_task(self._loop(self._stop), name=name)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._stop is None or self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(self._task, self._state.ttl)
        except TimeoutError:
            log.warning("lease renewer of %s did not stop in time", self._state.lease.name)
