"""What one delivery of a run message did; what callbacks receive is the one
:class:`~agentcron.runloop.RunReport` (re-exported here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentcron.leases.base import Lease
from agentcron.ledger.records import CompleteRequest, NewWindow, RunRecord, RunState
from agentcron.runloop import RunReport

__all__ = ["STATE_COUNTER", "Outcome", "RunReport", "Settlement", "duplicate"]

STATE_COUNTER = {
    RunState.SUCCEEDED: "successes", RunState.FAILED: "failures", RunState.SKIPPED: "skipped",
    RunState.MISSED: "missed", RunState.CANCELLED: "cancelled", RunState.TIMEOUT: "timeouts",
}  # fmt: skip
"""The statistics counter each terminal state adds to."""


@dataclass(frozen=True)
class Outcome:
    """What one delivery of a run message did."""

    state: RunState | None
    duplicate: bool
    attempts: int
    result: Any
    error: str | None
    detail: str
    duration: float | None = None
    started_at: datetime | None = None
    requeue_after: float | None = None  # waited in vain for a fleet-wide limit: publish again
    pending: Settlement | None = None  # ran in a prefork child: the main process settles it


@dataclass(frozen=True)
class Settlement:
    """A run that ended in a prefork child and is not yet recorded: its fenced completion and
    its lease, which the worker's main process writes and releases in batches
    (:meth:`agentcron.guard.run.Guard.settle`). Until then the row stays active under the
    run's token and the lease stays held (it expires within its TTL if nobody settles)."""

    request: CompleteRequest
    lease: Lease
    window: NewWindow


def duplicate(detail: str, record: RunRecord | None = None) -> Outcome:
    """The outcome of a delivery that did not run: its window was done, running or fenced."""
    return Outcome(None, True, record.attempt if record else 0, None, None, f"duplicate: {detail}")
