"""The misfire rule: a window the scheduler *emitted* later than its grace is ``missed``.

Lateness is the scheduler's: the time the window's row was recorded ``scheduled``
(``scheduled_at``, stamped by the beat, the watchdog or a trigger on the reference clock of
:mod:`agentcron.refclock`) minus its slot; the wall clock of the worker that receives it plays no
part. So a window recorded in time runs even when a broker outage or a backlog delivers it late
(late, not lost: scenario S19), a worker whose clock runs ahead never misfires what it receives
(S20), and a window a beat catches up with, or the watchdog re-enqueues, after its grace is
``missed`` with the reason. This is APScheduler's ``misfire_grace_time`` (checked when the
scheduler submits the job) and Kubernetes' ``startingDeadlineSeconds`` (checked when the
controller creates the Job), not a deadline on the queue. Only a row without a stamp (none
recorded) falls back to the receiving process's reference time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentcron.ledger.records import RunRecord


def lateness(slot: datetime, row: RunRecord | None, now: datetime) -> timedelta:
    """How late the window of ``slot`` (whose row is ``row``) was emitted; ``now`` when unrecorded."""
    if row is None or row.scheduled_at is None:
        return now - slot
    at = row.scheduled_at
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)) - slot


def misfire_reason(late: timedelta, grace: timedelta) -> str | None:
    """The ``missed`` reason when ``late`` exceeds ``grace``, else None."""
    if late <= grace:
        return None
    return f"misfire: emitted {late.total_seconds():.0f}s after its slot, grace {grace}"
