"""Taking a job's lease under its overlap policy.

When another run holds the job's lease: a delivery of *that same* window waits up to one TTL
for a dead holder's lease to expire (then takes over) and is a duplicate if the holder lives;
otherwise the policy decides: ``skip`` (this window ends ``skipped``), ``buffer_one`` (wait, but
only one window may wait), ``buffer_all`` (wait), ``cancel_other`` (ask the holder to stop, then
wait), ``allow`` (leases are per window, so only the same window can be holding one).
Waiting polls the lease on the injected clock until the window's misfire deadline.

The windows of a backfill are many past windows sent at once: under ``skip`` they would skip one
another (and ``cancel_other`` cancel one another), though none of them is late for anything. So a
backfill delivery queues (``buffer_all``) whatever the job's policy, unless the job says
``allow``, and waits up to ``queue_wait`` (the guard passes half the visibility timeout) instead
of until its long-past misfire deadline (:func:`policy_for`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from agentcron.clock import Clock
from agentcron.guard.modes import Mode
from agentcron.jobs import JobSpec
from agentcron.leases.base import Lease, LeaseStore
from agentcron.leases.cancel import CancelSignals
from agentcron.ledger.records import ACTIVE_STATES, NewWindow, RunRecord

# Owner strings need uniqueness, not secrecy: one seeded generator (plus the pid, since forked
# children share its state) instead of os.urandom per run, which costs ~100 µs here.
_OWNERS = random.Random()
QUEUEING_TRIGGERS = ("backfill",)
"""Triggers whose windows wait for each other instead of applying skip or cancel_other."""


def policy_for(overlap: str, trigger: str) -> str:
    """The overlap policy a delivery of ``trigger`` follows under the job's ``overlap``."""
    if trigger in QUEUEING_TRIGGERS and overlap != "allow":
        return "buffer_all"
    return overlap


@dataclass(frozen=True)
class Skip:
    """The policy says this window does not run; ``reason`` goes into the ledger."""

    reason: str


@dataclass(frozen=True)
class Duplicate:
    """The window is already running elsewhere."""

    detail: str


@dataclass(frozen=True)
class OverlapWait:
    """Everything the policy needs to decide and to wait."""

    leases: LeaseStore
    cancels: CancelSignals
    clock: Clock
    mode: Mode
    spec: JobSpec
    window: NewWindow
    current: Callable[[], Awaitable[RunRecord | None]]
    queue_wait: timedelta = timedelta(hours=1)


def lease_owner(window: NewWindow) -> str:
    """A unique owner string that names the window it runs: ``{window_start_epoch}.{random}``.

    A delivery that finds the job's lease held can then tell its own window (a redelivery, or a
    concurrent delivery that has not claimed the row yet) from another window (an overlap).
    """
    return f"{int(window.window_start.timestamp())}.{os.getpid():x}.{_OWNERS.getrandbits(48):012x}"


def _held_by_same_window(window: NewWindow, record: RunRecord | None, holder: Lease | None) -> bool:
    if holder is None:
        return False
    if holder.owner.split(".", 1)[0] == str(int(window.window_start.timestamp())):
        return True
    return (record is not None and record.state in ACTIVE_STATES
            and record.token == holder.token)  # fmt: skip


async def acquire_with_policy(w: OverlapWait, name: str, owner: str) -> Lease | Skip | Duplicate:
    """The job's lease, or why this delivery must not run the window now."""
    ttl = w.spec.lease_ttl.total_seconds()
    lease = await w.mode.acquire(w.leases, name, owner, ttl)
    if lease is not None:
        return lease
    holder = await w.mode.io(w.leases.holder, name)
    policy = policy_for(w.spec.job.overlap, w.window.trigger)
    if _held_by_same_window(w.window, await w.current(), holder) or policy == "allow":
        return await _outlive(w, name, owner, ttl)
    held_by = f"token {holder.token}" if holder else "another run"
    if policy == "skip":
        return Skip(f"overlap: previous run ({held_by}) still running")
    buffer: Lease | None = None
    if policy == "buffer_one":
        buffer = await w.mode.io(w.leases.acquire, f"buffer:{w.spec.name}", owner, ttl)
        if buffer is None:
            return Skip(f"overlap: previous run ({held_by}) still running and one already waits")
    if policy == "cancel_other" and holder is not None:
        await w.mode.io(w.cancels.request, name, holder.token)
    try:
        lease = await _wait(w, name, owner, ttl, buffer, policy)
    finally:
        if buffer is not None:
            await w.mode.io(w.leases.release, buffer)
    if lease is None:
        return Skip(f"overlap ({policy}): previous run ({held_by}) did not finish in time")
    return lease


async def _outlive(w: OverlapWait, name: str, owner: str, ttl: float) -> Lease | Duplicate:
    """A delivery of the window whose own lease is live: is its holder alive?

    A holder killed mid-run (a prefork child, a whole worker) leaves its lease until the TTL
    runs out, and ``reject_on_worker_lost`` redelivers at once: dropping that delivery as a
    duplicate would lose the window (scenario 1). So wait up to one TTL: a dead holder's lease
    expires and this delivery takes the window over (the ledger's fencing keeps that safe); a
    live holder renews every TTL/3 or finishes, and then this delivery is the duplicate.
    """
    deadline = w.clock.monotonic() + ttl * 1.25 + 0.5
    interval = min(1.0, ttl / 10)
    while w.clock.monotonic() < deadline:
        await w.clock.asleep(interval)
        record = await w.current()
        if record is not None and record.state.terminal:
            return Duplicate(f"window already {record.state.value}")
        lease = await w.mode.io(w.leases.acquire, name, owner, ttl)
        if lease is not None:
            return lease
    return Duplicate("window running elsewhere (its lease is live and renewed)")


async def _wait(
    w: OverlapWait, name: str, owner: str, ttl: float, buffer: Lease | None, policy: str
) -> Lease | None:
    # up to the misfire grace from the slot, or from this delivery when it comes later (a
    # window the broker held back through an outage still waits for its predecessor)
    deadline = max(w.window.slot, w.clock.now()) + w.spec.misfire_grace
    if w.window.trigger in QUEUEING_TRIGGERS:  # a past window: not late for anything
        deadline = w.clock.now() + w.queue_wait
    if policy == "cancel_other":
        deadline = min(deadline, w.clock.now() + w.spec.lease_ttl * 2)
    interval = min(1.0, ttl / 10)
    while w.clock.now() < deadline:
        await w.clock.asleep(interval)
        lease = await w.mode.io(w.leases.acquire, name, owner, ttl)
        if lease is not None:
            return lease
        if buffer is not None:
            await w.mode.io(w.leases.renew, buffer, ttl)
    return None
