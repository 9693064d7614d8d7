"""Beat leader election on a :class:`~agentcron.leases.base.LeaseStore`.

Leadership lives where windows are recorded: the ``leases`` table of the SQL ledger
(:func:`leader_leases`), whatever the lease backend of the runs. A leader that leads through
Redis steps down when the broker goes away, and a beat that does not lead records nothing; a
leader on the ledger keeps recording windows ``scheduled`` through a broker outage and publishes
them when the broker answers (scenario S19). When the ledger itself is down, nothing can be
recorded anyway, and the leader steps down once it cannot renew.

One beat holds ``agentcron:beat:leader`` and renews it every TTL/3 (from a thread of its own
once :meth:`LeaderElection.start` ran, so that a beat loop blocked on the broker keeps it). A
standby retries to take it; it gets it once the leader's TTL ran out. A leader that could not
renew (it was paused past its TTL, or the store is unreachable) steps down before dispatching
anything and keeps ticking as a standby: no exception, no crash loop (redbeat#230).
"""

from __future__ import annotations

import logging
import threading
import uuid

import sqlalchemy as sa

from agentcron.clock import Clock
from agentcron.keys import BEAT_LEADER
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.sql import SqlLeaseStore

log = logging.getLogger(__name__)


def leader_leases(engine: sa.Engine, clock: Clock) -> LeaseStore:
    """Where the beat leader lease lives: the ledger's ``leases`` table (on the reference clock,
    which every beat shares: :mod:`agentcron.refclock`)."""
    return SqlLeaseStore(engine, clock)


class LeaderElection:
    """Whether this beat may dispatch now; renews while leading."""

    def __init__(self, leases: LeaseStore, clock: Clock, ttl: float, owner: str | None = None):
        self.leases = leases
        self.clock = clock
        self.ttl = ttl
        self.owner = owner or f"beat-{uuid.uuid4().hex[:12]}"
        self.lease: Lease | None = None
        self._renewed_at = 0.0
        self.elections = 0
        self.step_downs = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        """True while we hold a lease that, by our own clock, has not run out yet."""
        return self.lease is not None and self.clock.monotonic() - self._renewed_at < self.ttl

    def ensure(self) -> bool:
        """Acquire or renew as needed; True if we lead and may dispatch."""
        now = self.clock.monotonic()
        if self.lease is None:
            return self._try_acquire(now)
        if now - self._renewed_at < self.ttl / 3:
            return True
        return self.renew()

    def renew(self) -> bool:
        """Renew now if we lead; step down if we cannot (thread-safe)."""
        with self._lock:
            lease, now = self.lease, self.clock.monotonic()
            if lease is None:
                return False
            try:
                renewed = self.leases.renew(lease, self.ttl)
            except Exception as exc:  # the store is down: we cannot prove we still lead
                log.warning("beat leader renewal failed (%s); stepping down", type(exc).__name__)
                renewed = False
            if renewed:  # nobody else acquired it meanwhile (that would have changed the owner)
                self._renewed_at = now
                return True
            self.step_down("lease lost")
            return False

    def start(self) -> None:
        """Renew every TTL/3 from a daemon thread, so that a beat loop blocked on a slow broker
        (a publish waiting on its socket timeout) does not lose the leadership meanwhile."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="agentcron-beat-leader",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        """Stop the renewal thread (the lease stays until :meth:`step_down` or its TTL)."""
        self._stopping.set()

    def _renew_loop(self) -> None:
        while not self._stopping.wait(self.ttl / 3):
            if self.lease is not None:
                self.renew()

    def step_down(self, reason: str) -> None:
        """Stop leading (and release the lease if we still hold it)."""
        with self._lock:
            if self.lease is None:
                return
            lease, self.lease = self.lease, None
        self.step_downs += 1
        log.warning("beat %s stepped down: %s", self.owner, reason)
        try:
            self.leases.release(lease)
        except Exception:  # best effort: the TTL frees it anyway
            log.debug("release of the leader lease failed", exc_info=True)

    def _try_acquire(self, now: float) -> bool:
        try:
            lease = self.leases.acquire(BEAT_LEADER, self.owner, self.ttl)
        except Exception as exc:
            log.warning("beat leader election failed (%s)", type(exc).__name__)
            return False
        if lease is None:
            return False
        with self._lock:
            self.lease = lease
            self._renewed_at = now
        self.elections += 1
        log.info("beat %s is the leader (token %s)", self.owner, lease.token)
        return True
