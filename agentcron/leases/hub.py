"""One thread per process keeps every lease its runs hold: renewal and cancel polling, batched.

A run registers its lease with :meth:`LeaseHub.hold` for as long as it goes on. The hub's single
daemon thread wakes every ``tick`` seconds (at most a third of the shortest TTL held, and at most
``max_tick``), renews the leases that are due in one batch (one pipelined round trip on Redis),
and asks the cancel signals about every held lease in one batch (one MGET on Redis). So 10,000
runs in flight cost one round trip a tick, not 10,000 threads, tasks or polls.

A renewal that returns False (expired, or taken over) stops the run at once; one that raises
stops it only once the lease would have expired. A cancel request for the holder's token stops
it too. ``stop(reason)`` is called at most once per holding, from the hub thread: it must be
thread-safe (the guard's stop sets the run context's cancel event, and for an async run schedules
the task's cancellation on its loop). Due times are measured on the injected clock; :meth:`beat`
runs one step by hand for tests.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from agentcron.clock import Clock
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.cancel import CancelSignals

log = logging.getLogger(__name__)
Stop = Callable[[str], None]
Reacquirer = Callable[[Lease], Lease | None]
"""Given the lease that vanished, a fresh one for the same run, or None (leases/reacquire.py)."""


@dataclass(slots=True)
class Holding:
    """One lease kept alive for one run."""

    lease: Lease
    ttl: float
    stop: Stop
    last_ok: float
    next_renew: float
    lost: bool = False
    cancelled: bool = False
    stopped: bool = field(default=False, repr=False)
    reacquire: Reacquirer | None = field(default=None, repr=False)
    first: Lease | None = field(default=None, repr=False)

    def halt(self, reason: str) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self.stop(reason)
        except Exception:
            log.exception("stopping the run of lease %s failed", self.lease.name)


class LeaseHub:
    """Renews and watches every lease held in this process from one thread."""

    def __init__(
        self, store: LeaseStore, cancels: CancelSignals | None, clock: Clock,
        max_tick: float = 1.0,
    ) -> None:  # fmt: skip
        self.store = store
        self.cancels = cancels
        self.clock = clock
        self.max_tick = max_tick
        self._held: dict[int, Holding] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid_started = 0

    @contextmanager
    def hold(self, lease: Lease, ttl: float, stop: Stop,
             reacquire: Reacquirer | None = None) -> Iterator[Holding]:  # fmt: skip
        """Keep ``lease`` alive (renewed every ttl/3) while the block runs. With ``reacquire``,
        a lease that vanished is taken again and ``holding.lease`` becomes the new one (which the
        hub releases when the block ends; the caller releases the lease it passed in)."""
        now = self.clock.monotonic()
        holding = Holding(lease, ttl, stop, last_ok=now, next_renew=now + ttl / 3,
                          reacquire=reacquire, first=lease)  # fmt: skip
        key = next(self._ids)
        with self._lock:
            self._held[key] = holding
        self._ensure_thread()
        try:
            yield holding
        finally:
            with self._lock:
                self._held.pop(key, None)
            if holding.lease != holding.first and not holding.lost:
                _release(self.store, holding.lease)

    def tick(self) -> float:
        """How long the thread sleeps between beats."""
        with self._lock:
            ttls = [h.ttl for h in self._held.values()]
        return min([self.max_tick, *(t / 3 for t in ttls)])

    def beat(self) -> None:
        """One step: renew what is due, poll cancel requests, stop runs that lost their lease."""
        with self._lock:
            held = [h for h in self._held.values() if not h.lost]
        if not held:
            return
        self._poll_cancels(held)
        now = self.clock.monotonic()
        early = self.tick() / 10  # once per beat: tick() walks every holding
        due = [h for h in held if now >= h.next_renew - early]
        if due:
            self._renew(due, now)

    def _renew(self, due: list[Holding], started: float) -> None:
        try:
            results = _renew_many(self.store, [(h.lease, h.ttl) for h in due])
        except Exception as exc:
            log.warning("renewing %d lease(s) failed: %r", len(due), exc)
            results = [None] * len(due)
        now = self.clock.monotonic()
        for holding, ok in zip(due, results, strict=True):
            holding.next_renew = now + holding.ttl / 3
            if ok is False and _taken_again(holding):
                ok = True
            if ok:
                holding.last_ok = started
            elif ok is False or now - holding.last_ok >= holding.ttl:
                holding.lost = True
                holding.halt(f"lease {holding.lease.name} (token {holding.lease.token}) was lost")

    def _poll_cancels(self, held: list[Holding]) -> None:
        if self.cancels is None:
            return
        watch = [h for h in held if not h.cancelled]
        try:
            asked = _requested_many(self.cancels, [(h.lease.name, h.lease.token) for h in watch])
        except Exception as exc:
            log.warning("polling cancel signals failed: %r", exc)
            return
        for holding, yes in zip(watch, asked, strict=True):
            if yes:
                holding.cancelled = True
                lease = holding.lease
                holding.halt(f"cancel requested for {lease.name} (token {lease.token})")

    def _ensure_thread(self) -> None:
        import os

        if self._thread is not None and self._thread.is_alive() and self._pid_started == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and (
                self._pid_started == os.getpid()
            ):
                return
            self._pid_started = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="agentcron-lease-hub",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.tick())
            try:
                self.beat()
            except Exception:
                log.exception("lease hub beat failed")


def _taken_again(holding: Holding) -> bool:
    """Reacquire a lease that vanished (not taken over); True if ``holding`` has a new one."""
    if holding.reacquire is None:
        return False
    try:
        fresh = holding.reacquire(holding.lease)
    except Exception as exc:
        log.warning("reacquiring lease %s failed: %r", holding.lease.name, exc)
        return False
    if fresh is None:
        return False
    holding.lease = fresh
    return True


def _release(store: LeaseStore, lease: Lease) -> None:
    try:
        store.release(lease)
    except Exception as exc:  # the TTL frees it
        log.warning("releasing reacquired lease %s failed: %r", lease.name, exc)


def _renew_many(store: LeaseStore, leases: list[tuple[Lease, float]]) -> list[bool | None]:
    batch = getattr(store, "renew_many", None)
    if batch is not None:
        return list(batch(leases))
    results: list[bool | None] = []
    for lease, ttl in leases:
        try:
            results.append(store.renew(lease, ttl))
        except Exception as exc:
            log.warning("renewing lease %s failed: %r", lease.name, exc)
            results.append(None)
    return results


def _requested_many(cancels: CancelSignals, holders: list[tuple[str, int]]) -> list[bool]:
    batch = getattr(cancels, "requested_many", None)
    if batch is not None:
        return list(batch(holders))
    return [cancels.requested(name, token) for name, token in holders]
