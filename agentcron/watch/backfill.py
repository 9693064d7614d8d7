"""Backfill: enqueue the past windows of a range, skipping those that already succeeded.

The windows are counted before anything is planned (arithmetically, or walking window to window
with an early stop), so an absurd range is refused at once with its count. Each window of
``[start, end]`` gets a run message with trigger ``backfill``, sent on the job's queue; the
windows of a backfill queue behind each other under any overlap policy but ``allow`` (see
:mod:`agentcron.guard.overlap`), they never skip one another. A window with
no row is recorded ``scheduled`` first (record before publish); a window that ended ``failed``,
``missed``, ``timeout``, ``cancelled`` or ``skipped`` is sent with ``force`` (the guard would
otherwise drop it as done); a succeeded or running window is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.emission.envelope import emission_for, task_for
from agentcron.emission.publisher import Outgoing, Publisher
from agentcron.errors import ConfigError
from agentcron.jobs import JobSpec
from agentcron.ledger.history import grant_force
from agentcron.ledger.records import ACTIVE_STATES, RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import RunMessage
from agentcron.schedules import IntervalSchedule
from agentcron.windows import next_window_bound, window_start

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
"""The largest ``--limit``: a backfill holds its messages in memory and reads one row each."""
_SAMPLE = 5000
"""Windows visited before the count is extrapolated (a range far over the limit is refused
from the sample's estimate, without walking it)."""
_ONE_US = timedelta(microseconds=1)


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


def iter_windows(spec: JobSpec, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """``(first slot, window start)`` of every window with a slot in ``[start, end]``, in order.

    Jumps from one window to the next (a day window of a job firing every second costs one step,
    not 86,400), so the cost is the number of windows, never the number of slots.
    """
    job, schedule = spec.job, spec.schedule
    cursor, last = start - _ONE_US, None
    while (slot := schedule.next_fire(cursor)) is not None and slot <= end:
        begins = window_start(slot, job.window, job.tz)
        if begins != last:
            yield slot, begins
            last = begins
        try:
            cursor = max(slot, next_window_bound(begins, job.window, job.tz) - _ONE_US)
        except (OverflowError, ValueError):  # the next window lies past the calendar's end
            return


def count_windows(spec: JobSpec, start: datetime, end: datetime, limit: int) -> tuple[int, bool]:
    """How many windows ``[start, end]`` holds, cheaply: ``(count, exact)``.

    Arithmetic for interval schedules with one window per slot; otherwise windows are walked
    (see :func:`iter_windows`) and the walk stops once the count is over ``limit``: after
    :data:`_SAMPLE` windows if the total extrapolated from them is over the limit, else at
    ``limit + 1``. A count that is not exact is that extrapolation.
    """
    schedule = spec.schedule
    if isinstance(schedule, IntervalSchedule) and spec.job.window == "slot":
        return schedule.count_between(start - _ONE_US, end), True
    count, span = 0, end - start
    for slot, _begins in iter_windows(spec, start, end):
        count += 1
        if count in (_SAMPLE, limit + 1):
            covered = max(slot - start, timedelta(seconds=1))
            estimate = max(count, round(count * (span / covered)))
            if estimate > limit:
                return estimate, False
    return count, True


def plan_windows(spec: JobSpec, start: datetime, end: datetime, limit: int) -> list[RunMessage]:
    """Backfill messages of every window with a slot in ``[start, end]`` (one per window).

    The windows are counted first (:func:`count_windows`): a range with more than ``limit`` is
    refused at once, naming its count.
    """
    if end < start:
        raise BackfillError("--to is before --from")
    if limit > MAX_LIMIT:
        raise BackfillError(f"--limit {limit} is over the maximum {MAX_LIMIT}")
    try:
        count, exact = count_windows(spec, start, end, limit)
        if count > limit:
            amount = f"{count:,}" if exact else f"about {count:,}"
            raise BackfillError(f"the range holds {amount} windows, more than --limit {limit}; "
                                f"narrow it or raise --limit (at most {MAX_LIMIT:,})")  # fmt: skip
        messages = []
        for slot, _begins in iter_windows(spec, start, end):
            messages.append(RunMessage.from_record(emission_for(spec, slot, "backfill").window))
        return messages
    except ConfigError as exc:
        raise BackfillError(str(exc)) from exc


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
            message = replace(message, attempt=row.next_attempt, force=True)  # the row's slot may differ
            report.forced.append(message.window_key)
        batch.append(Outgoing(task, spec.queue, message))
        report.sent.append(message.window_key)
    grant_force(ledger.engine, report.forced, clock.now(), "backfill")  # before they are sent
    publisher.publish(batch)
    return report
