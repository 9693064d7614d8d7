"""Giving a run's lease back after its outcome is recorded.

The outcome is already committed (or fenced out) when the lease is released, so a release that
fails (Redis stalled past the lease TTL by ``CLIENT PAUSE``, a broker restart, an OOM reply) is
harmless: the lease expires within its TTL. It is a warning, never the run's error (before
issue 20 it surfaced as ``ERROR run_sync raised unexpected: TimeoutError``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agentcron.guard.modes import Mode
from agentcron.leases.base import Lease, LeaseStore

log = logging.getLogger("agentcron.guard")


async def release_quietly(mode: Mode, leases: LeaseStore, lease: Lease, window_key: str) -> bool:
    """Release ``lease``; on failure log a warning and return False (the TTL frees it)."""
    try:
        return await mode.release(leases, lease)
    except Exception as exc:
        log.warning("%s: releasing lease %s (token %d) failed (%s: %s); it expires within its TTL",
                    window_key, lease.name, lease.token, type(exc).__name__, exc)  # fmt: skip
        return False


async def release_all(mode: Mode, leases: LeaseStore, held: Sequence[Lease]) -> None:
    """Release many leases in one round trip when the store can (Redis), else one by one; a
    failure is a warning (each lease expires within its TTL)."""
    if not held:
        return
    batch = getattr(leases, "release_many", None)
    try:
        if batch is not None and len(held) > 1:
            await mode.io(batch, held)
            return
    except Exception as exc:
        log.warning("releasing %d leases failed (%s: %s); they expire within their TTL",
                    len(held), type(exc).__name__, exc)  # fmt: skip
        return
    for lease in held:
        await release_quietly(mode, leases, lease, lease.name)
