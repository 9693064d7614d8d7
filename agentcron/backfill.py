"""Backfill: enqueue the past windows of a range, skipping those that already succeeded.

Each window of ``[start, end]`` gets a run message with trigger ``backfill``, sent on the job's
queue; the guard applies the job's overlap policy to it like to any run (so with ``skip`` and
several workers, backfilled windows that would overlap are recorded ``skipped``). A window with
no row is recorded ``scheduled`` first (record before publish); a window that ended ``failed``,
``missed``, ``timeout``, ``cancelled`` or ``skipped`` is sent with ``force`` (the guard would
otherwise drop it as done); a succeeded or running window is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentcron.beat.planner import emission_for, task_for
from agentcron.beat.publisher import Outgoing, Publisher
from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.jobs import JobSpec
from agentcron.ledger.history import grant_force
from agentcron.ledger.records import ACTIVE_STATES, RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import RunMessage

DEFAULT_LIMIT = 1000


@dataclass
class BackfillReport:
    """Window keys by what backfill did with them."""

    sent: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI."""
        return (f"sent {len(self.sent)} window(s) ({len(self.forced)} re-run of a failed/missed "
                f"window); skipped {len(self.succeeded)} already succeeded, "
                f"{len(self.running)} running")  # fmt: skip


class BackfillError(ValueError):
    """A bad range (end before start, or more windows than the limit)."""


def plan_windows(spec: JobSpec, start: datetime, end: datetime, limit: int) -> list[RunMessage]:
    """Backfill messages of every window with a slot in ``[start, end]`` (one per window)."""
    if end < start:
        raise BackfillError("--to is before --from")
    messages: dict[str, RunMessage] = {}
    for slot in spec.schedule.fires_between(start - timedelta(microseconds=1), end):
        window = emission_for(spec, slot, "backfill").window
        if window.window_key not in messages:
            if len(messages) >= limit:
                raise BackfillError(f"more than {limit} windows in the range; narrow it or "
                                    "raise --limit")  # fmt: skip
            messages[window.window_key] = RunMessage(
                spec.name, window.window_key, window.window_start, slot, "backfill")
    return list(messages.values())


def backfill(spec: JobSpec, ledger: Ledger, publisher: Publisher, start: datetime,
             end: datetime, limit: int = DEFAULT_LIMIT,
             clock: Clock = SYSTEM_CLOCK) -> BackfillReport:  # fmt: skip
    """Enqueue the windows of ``[start, end]`` that have not succeeded."""
    report = BackfillReport()
    batch: list[Outgoing] = []
    task = task_for(spec)
    for message in plan_windows(spec, start, end, limit):
        row = ledger.get(spec.name, message.window_start)
        if row is not None and row.state is RunState.SUCCEEDED:
            report.succeeded.append(message.window_key)
            continue
        if row is not None and row.state in ACTIVE_STATES:
            report.running.append(message.window_key)
            continue
        if row is None:
            window = emission_for(spec, message.slot, "backfill").window
            if not ledger.record_scheduled([window]):
                report.running.append(message.window_key)  # recorded meanwhile by someone else
                continue
        elif row.state.terminal:
            message = RunMessage(message.job, message.window_key, message.window_start,
                                 message.slot, "backfill", max(row.attempt, 0) + 1, force=True)
            report.forced.append(message.window_key)
        batch.append(Outgoing(task, spec.queue, message))
        report.sent.append(message.window_key)
    grant_force(ledger.engine, report.forced, clock.now(), "backfill")  # before they are sent
    publisher.publish(batch)
    return report
