"""The in-memory lease store: same semantics as Redis and SQL, time from an injected Clock.

For unit tests (of the guard, the renewers, the overlap policies): thread-safe, no I/O. Expiry is
measured on ``clock.monotonic()``, so a :class:`~agentcron.clock.FrozenClock` expires leases only
when it is advanced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agentcron.clock import Clock
from agentcron.leases.base import Lease


@dataclass(frozen=True)
class _Held:
    lease: Lease
    expires: float


class MemoryLeaseStore:
    """A :class:`~agentcron.leases.base.LeaseStore` in a dict, guarded by one lock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._fences: dict[str, int] = {}

    def _live(self, name: str) -> _Held | None:
        held = self._held.get(name)
        if held is not None and held.expires <= self.clock.monotonic():
            del self._held[name]
            return None
        return held

    def acquire(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take ``name`` for ``ttl`` seconds if nobody holds it; None if somebody does."""
        _check_ttl(ttl)
        with self._lock:
            if self._live(name) is not None:
                return None
            token = self._fences.get(name, 0) + 1
            self._fences[name] = token
            lease = Lease(name=name, owner=owner, token=token)
            self._held[name] = _Held(lease, self.clock.monotonic() + ttl)
            return lease

    def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend our lease to ``ttl`` seconds from now; False if we lost it."""
        _check_ttl(ttl)
        with self._lock:
            held = self._live(lease.name)
            if held is None or held.lease != lease:
                return False
            self._held[lease.name] = _Held(lease, self.clock.monotonic() + ttl)
            return True

    def release(self, lease: Lease) -> bool:
        """Compare-and-delete; False if the lease is no longer ours."""
        with self._lock:
            held = self._live(lease.name)
            if held is None or held.lease != lease:
                return False
            del self._held[lease.name]
            return True

    def holder(self, name: str) -> Lease | None:
        """The live lease on ``name``, if any."""
        with self._lock:
            held = self._live(name)
            return None if held is None else held.lease

    def next_token(self, name: str) -> int:
        """A fresh fencing token for ``name`` without taking the lease."""
        with self._lock:
            token = self._fences.get(name, 0) + 1
            self._fences[name] = token
            return token

    def remaining(self, name: str) -> float | None:
        """Seconds until the live lease on ``name`` expires (None when nobody holds it)."""
        with self._lock:
            held = self._live(name)
            return None if held is None else held.expires - self.clock.monotonic()


def _check_ttl(ttl: float) -> None:
    if ttl <= 0:
        raise ValueError(f"lease ttl must be positive, got {ttl}")
