"""Taking a vanished lease back while its run goes on (issue 20, item 3).

A lease can disappear while its holder still renews in time: Redis evicted it (``maxmemory``
with an evicting policy) or lost it (a restart without persistence). Its renewal then returns
False, as it would if another holder had taken the lease over, and the run used to be cancelled.
Instead the hub asks a :class:`Reacquire`: take the lease again (a fresh fencing token, only if
nobody holds it now), then move the window's ledger row from the old token to the new one,
fenced on the old token (the row must still name this holder). If either step fails, somebody
else owns the window and the run stops as before. The ledger write is passed in, so this module
needs no ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agentcron.leases.base import Lease, LeaseStore

log = logging.getLogger(__name__)
Retoken = Callable[[int, int], bool]
"""(old token, new token) -> True if the run's row named the old token and now names the new."""


class Reacquire:
    """Reacquire one run's lease under a fresh token if its ledger row still names it."""

    def __init__(self, store: LeaseStore, ttl: float, retoken: Retoken) -> None:
        self.store = store
        self.ttl = ttl
        self.retoken = retoken

    def __call__(self, lost: Lease) -> Lease | None:
        """The new lease, or None when another holder owns the lease or the window."""
        fresh = self.store.acquire(lost.name, lost.owner, self.ttl)
        if fresh is None:
            return None  # taken over: the run must stop
        try:
            moved = self.retoken(lost.token, fresh.token)
        except Exception as exc:
            log.warning("lease %s: moving the run to token %d failed (%s)", lost.name,
                        fresh.token, type(exc).__name__)  # fmt: skip
            moved = False
        if not moved:
            self.store.release(fresh)
            return None
        log.warning("lease %s vanished while its holder renewed in time (evicted or lost with "
                    "Redis); reacquired, token %d -> %d", lost.name, lost.token,
                    fresh.token)  # fmt: skip
        return fresh
