"""Beat leader election on a :class:`~agentcron.leases.base.LeaseStore`.

One beat holds ``agentcron:beat:leader`` and renews it every TTL/3. A standby retries to take
it; it gets it once the leader's TTL ran out. A leader that could not renew (it was paused
past its TTL, or the store is unreachable) steps down before dispatching anything and keeps
ticking as a standby: no exception, no crash loop (redbeat#230).
"""

from __future__ import annotations

import logging
import uuid

from agentcron.clock import Clock
from agentcron.keys import BEAT_LEADER
from agentcron.leases.base import Lease, LeaseStore

log = logging.getLogger(__name__)


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
        try:
            renewed = self.leases.renew(self.lease, self.ttl)
        except Exception as exc:  # the store is down: we cannot prove we still lead
            log.warning("beat leader renewal failed (%s); stepping down", type(exc).__name__)
            renewed = False
        if renewed:  # nobody else acquired it meanwhile (that would have changed the owner)
            self._renewed_at = now
            return True
        self.step_down("lease lost")
        return False

    def step_down(self, reason: str) -> None:
        """Stop leading (and release the lease if we still hold it)."""
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
        self.lease = lease
        self._renewed_at = now
        self.elections += 1
        log.info("beat %s is the leader (token %s)", self.owner, lease.token)
        return True
