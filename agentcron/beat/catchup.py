"""Catch-up after beat downtime: which past slots of one job to emit, and which are missed.

Pure: the last slot the ledger knows for the job, the schedule, ``now`` and the job's policy go
in; slots come out. Slots older than ``catchup_window`` are missed with the reason
"scheduler down"; inside it, ``coalesce`` decides: ``all`` emits each, ``latest`` emits the
newest (the others are missed, coalesced into it), ``none`` emits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentcron.schedules import Schedule

SCHEDULER_DOWN = "scheduler down"
DEFAULT_MAX_MISSED = 1000


@dataclass(frozen=True)
class CatchUp:
    """The outcome for one job: slots to emit now, slots to record missed (with a reason)."""

    emit: list[datetime] = field(default_factory=list)
    missed: list[tuple[datetime, str]] = field(default_factory=list)
    truncated: int = 0


def plan_catchup(
    schedule: Schedule,
    last_slot: datetime | None,
    now: datetime,
    catchup_window: timedelta,
    coalesce: str,
    max_missed: int = DEFAULT_MAX_MISSED,
) -> CatchUp:
    """Slots in ``(last_slot, now]``: emitted or missed by the job's policy.

    A job the ledger has never seen (``last_slot`` None) has nothing to catch up. At most
    ``max_missed`` of the oldest missed slots are listed; ``truncated`` counts the rest.
    """
    if last_slot is None or last_slot >= now:
        return CatchUp()
    horizon = now - catchup_window
    old: list[datetime] = []
    recent: list[datetime] = []
    start, truncated = _walk_start(schedule, last_slot, horizon, max_missed)
    slot = schedule.next_fire(start)
    while slot is not None and slot <= now:
        (recent if slot >= horizon else old).append(slot)
        slot = schedule.next_fire(slot)
    if len(old) > max_missed:
        truncated += len(old) - max_missed
        old = old[-max_missed:]
    missed = [(s, SCHEDULER_DOWN) for s in old]
    if coalesce == "all":
        return CatchUp(emit=recent, missed=missed, truncated=truncated)
    if coalesce == "latest" and recent:
        reason = f"{SCHEDULER_DOWN} (coalesced into the slot of {recent[-1]:%Y-%m-%dT%H:%M:%SZ})"
        missed += [(s, reason) for s in recent[:-1]]
        return CatchUp(emit=recent[-1:], missed=missed, truncated=truncated)
    missed += [(s, f"{SCHEDULER_DOWN} (coalesce=none)") for s in recent]
    return CatchUp(missed=missed, truncated=truncated)


def _walk_start(
    schedule: Schedule, last_slot: datetime, horizon: datetime, max_missed: int
) -> tuple[datetime, int]:
    """Where to start walking, so a per-second job down for a day stays cheap; and how many
    older slots that skips (estimated from the period)."""
    period = schedule.period
    if period is None or period <= timedelta(0):
        return last_slot, 0
    earliest = horizon - period * max_missed
    if last_slot >= earliest:
        return last_slot, 0
    return earliest, int((earliest - last_slot) / period)
