"""The watchdog: expected windows minus the ledger ⇒ re-enqueue (late, not lost) or ``missed``.

For each enabled job, every window whose slot lies inside the job's catch-up window is expected:

- no row at all ⇒ recorded ``scheduled`` (trigger ``watchdog``) and published, record before
  publish like the beat;
- a row still ``scheduled`` whose message is on no queue (Redis: the queue lists and kombu's
  ``unacked`` hash), or, when the broker cannot be inspected, older than
  ``watchdog_republish_after`` ⇒ published again (scenarios 7, 8, 9), up to its grace even
  when its slot has left the catch-up window;
- a row left ``claimed`` / ``running`` by a run that is gone (its token does not hold its
  lease), untouched for ``watchdog_min_age`` (blind: ``watchdog_republish_after``) and whose
  message is on no queue ⇒ published again with the next attempt (scenario 6, see
  :mod:`agentcron.watch.stranded`); the guard's claim takes the row over with a newer token.

A window with no terminal success once ``slot + grace`` has passed is marked ``missed``
(:meth:`Ledger.mark_terminal`) and alerted once. The grace defaults to one schedule period plus
one hour (a daily job alerts after 25 h). "Once" is a lease named ``alert:{window_key}``: the
first watchdog to take it alerts, every other one (or a later pass) sees it taken.

Which windows are expected, which the ledger holds, and sending a window are one service's,
:class:`~agentcron.emission.expected.ExpectedWindows` (the beat builds and sends windows the same
way); the watchdog only judges them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agentcron.alerts import Alert, Alerter
from agentcron.clock import Clock
from agentcron.emission.envelope import Emission
from agentcron.emission.expected import ExpectedWindows
from agentcron.emission.publisher import CeleryPublisher, Outgoing, Publisher
from agentcron.jobs import JobSpec
from agentcron.leases.base import LeaseStore
from agentcron.ledger.queries import active_rows, first_slots
from agentcron.ledger.records import ACTIVE_STATES, NewWindow, RunRecord, RunState
from agentcron.ledger.store import Ledger
from agentcron.settings import Settings
from agentcron.watch.queued import QueuedWindows, queue_inspector
from agentcron.watch.report import WatchReport
from agentcron.watch.stranded import again, rescue_batch, stranded_rows

if TYPE_CHECKING:
    from agentcron.runtime import Runtime

log = logging.getLogger("agentcron.watchdog")
WATCHDOG_TASK = "agentcron.watchdog"
ONE_HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class WatchdogConfig:
    """How the watchdog judges windows (seconds)."""

    republish_after: float = 600.0
    min_age: float = 30.0
    grace: float = 0.0  # 0: one schedule period plus one hour, per job

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchdogConfig:
        """The watchdog's part of the settings."""
        return cls(settings.watchdog_republish_after, settings.watchdog_min_age,
                   settings.watchdog_grace)  # fmt: skip


def grace_of(spec: JobSpec, config: WatchdogConfig) -> timedelta:
    """How long after its slot a window may still succeed before it is missed."""
    if config.grace > 0:
        return timedelta(seconds=config.grace)
    return (spec.schedule.period or timedelta(days=1)) + ONE_HOUR


class Watchdog:
    """One pass over every job: :meth:`check`."""

    PENDING_LIMIT = 1000  # 'scheduled' rows read per pass, oldest first

    def __init__(self, ledger: Ledger, publisher: Publisher, clock: Clock, alerter: Alerter,
                 once: LeaseStore, *, config: WatchdogConfig | None = None,
                 queued: QueuedWindows | None = None) -> None:  # fmt: skip
        self.ledger = ledger
        self.publisher = publisher
        self.clock = clock
        self.alerter = alerter
        self.once = once
        self.config = config or WatchdogConfig()
        self.queued = queued
        self.windows = ExpectedWindows(ledger, publisher, clock)

    def check(self, specs: Iterable[JobSpec]) -> WatchReport:
        """Re-enqueue lost windows and mark, then alert, missed ones."""
        report = WatchReport()
        now = self.clock.now()
        firsts = first_slots(self.ledger.engine)
        expected: list[tuple[JobSpec, Emission]] = []
        overdue: list[tuple[JobSpec, Emission, timedelta]] = []
        enabled: dict[str, JobSpec] = {}
        for spec in specs:
            if not spec.job.enabled:
                continue
            report.jobs += 1
            enabled[spec.name] = spec
            first = firsts.get(spec.name)
            if first is None:  # never scheduled yet: the beat starts it, nothing is owed
                continue
            expected += self._expected(spec, now, first)
            overdue += self._overdue(spec, now, first)
        rows = self.windows.recorded([e for _, e in expected] + [e for _, e, _ in overdue])
        owed, late = self._scheduled(enabled, now)
        self._enqueue(expected, rows, owed, enabled, now, report)
        marking = [(spec, e.window, horizon) for spec, e, horizon in overdue]
        marking += [(spec, row.window, grace_of(spec, self.config)) for spec, row in late
                    if row.window_key not in rows]  # fmt: skip
        rows |= {row.window_key: row for _, row in late}
        self._mark(marking, rows, report)
        if report.enqueued or report.republished or report.missed:
            log.info("watchdog: %s", report.summary())
        return report

    def _expected(self, spec: JobSpec, now: datetime, first: datetime) -> list[
        tuple[JobSpec, Emission]
    ]:
        """Windows inside the catch-up window, due long enough ago that the beat has sent them."""
        ripe = now - timedelta(seconds=self.config.min_age)
        start = max(now - spec.catchup_window, first - _TICK)
        return [(spec, e) for e in self.windows.between(spec, start, now) if e.due_at <= ripe]

    def _overdue(self, spec: JobSpec, now: datetime, first: datetime) -> list[
        tuple[JobSpec, Emission, timedelta]
    ]:
        """Windows whose ``slot + grace`` has passed (within one more catch-up window back)."""
        grace = grace_of(spec, self.config)
        lookback = max(spec.catchup_window, spec.schedule.period or timedelta(days=1))
        start = max(now - grace - lookback, first - _TICK)
        return [(spec, e, grace + lookback) for e in self.windows.between(spec, start, now - grace)]

    def _enqueue(self, expected: list[tuple[JobSpec, Emission]], rows: dict[str, RunRecord],
                 owed: list[tuple[JobSpec, RunRecord]], specs: dict[str, JobSpec], now: datetime,
                 report: WatchReport) -> None:  # fmt: skip
        """Record and send windows without a row; re-send 'scheduled' rows the broker lost and
        active rows whose run is gone (:mod:`agentcron.watch.stranded`)."""
        fresh = [e for _, e in expected if e.window.window_key not in rows]
        if fresh and self.windows.send(fresh):
            report.enqueued += [e.window.window_key for e in fresh]
        age = self.config.min_age if self.queued is not None else self.config.republish_after
        active = active_rows(self.ledger.engine, specs, now - timedelta(seconds=age))
        stranded = stranded_rows(active, specs, self.once) if active else []
        if not owed and not stranded:
            return
        queued = self.queued.window_keys() if self.queued is not None else None
        if stranded:  # read again after the broker: a row that moved on since is not stranded
            again_rows = self.ledger.get_many([r.window_key for _, r in stranded])
            stranded = [(spec, row) for spec, row in stranded
                        if (now_row := again_rows.get(row.window_key)) is not None
                        and now_row.state in ACTIVE_STATES and now_row.token == row.token]  # fmt: skip
        self._publish(self._owed(owed, queued, now), report, "left 'scheduled' with no message")
        rescued = rescue_batch(stranded, queued, self.once, self.config.republish_after)
        self._publish(rescued, report, "left claimed/running by a run that is gone")

    def _scheduled(self, specs: dict[str, JobSpec], now: datetime) -> tuple[
        list[tuple[JobSpec, RunRecord]], list[tuple[JobSpec, RunRecord]]
    ]:
        """Rows of enabled jobs still 'scheduled' after ``min_age``: (owed, late).

        Owed, within their grace, whether or not the slot is still inside the catch-up window
        (which decides what a beat emits after downtime, not whether a recorded window may be
        lost); sent again, the misfire rule judges each by when it was recorded (late, not
        lost). Late, past their grace: missed, even when older than :meth:`_overdue` looks.
        """
        ripe = now - timedelta(seconds=self.config.min_age)
        owed: list[tuple[JobSpec, RunRecord]] = []
        late: list[tuple[JobSpec, RunRecord]] = []
        for row in self.ledger.pending(ripe, self.PENDING_LIMIT, jobs=specs.keys()):
            spec = specs.get(row.job)
            if spec is not None:
                within = row.slot + grace_of(spec, self.config) > now
                (owed if within else late).append((spec, row))
        return owed, late

    def _owed(self, owed: list[tuple[JobSpec, RunRecord]], queued: set[str] | None,
              now: datetime) -> list[Outgoing]:  # fmt: skip
        """'scheduled' rows old enough whose message is on no queue (or, blind, stale)."""
        ripe = now - timedelta(seconds=self.config.min_age)
        stale = now - timedelta(seconds=self.config.republish_after)
        batch: list[Outgoing] = []
        for spec, row in owed:
            at = row.scheduled_at or row.slot
            lost = row.window_key not in queued if queued is not None else at <= stale
            if at <= ripe and lost:
                batch.append(again(spec, row))
        return batch

    def _publish(self, batch: list[Outgoing], report: WatchReport, why: str) -> None:
        if not batch:
            return
        try:
            self.windows.resend(batch)
        except Exception as exc:
            log.warning("watchdog could not re-publish %d window(s): %s", len(batch),
                        type(exc).__name__)  # fmt: skip
            return
        report.republished += [out.message.window_key for out in batch]
        log.warning("watchdog re-published %d window(s) %s: %s", len(batch), why,
                    ", ".join(o.message.window_key for o in batch[:10]))  # fmt: skip

    def _mark(self, overdue: list[tuple[JobSpec, NewWindow, timedelta]],
              rows: dict[str, RunRecord], report: WatchReport) -> None:  # fmt: skip
        """Mark overdue windows without a success 'missed'; alert each missed window once."""
        for spec, window, horizon in overdue:
            row = rows.get(window.window_key)
            state = row.state if row is not None else None
            reason = row.error_message if row is not None else None
            if state is None or state is RunState.SCHEDULED:
                grace = grace_of(spec, self.config)
                reason = (f"no successful run within {grace} after slot "
                          f"{window.slot:%Y-%m-%dT%H:%M:%SZ}")  # fmt: skip
                if not self.ledger.mark_terminal(window, RunState.MISSED, reason):
                    continue
                report.missed.append(window.window_key)
                state = RunState.MISSED
            if state is RunState.MISSED:
                self._alert_once(window, reason or "missed", horizon, report)

    def _alert_once(self, window: NewWindow, reason: str, horizon: timedelta,
                    report: WatchReport) -> None:  # fmt: skip
        ttl = (horizon + timedelta(days=1)).total_seconds()
        if self.once.acquire(f"alert:{window.window_key}", "watchdog", ttl) is None:
            return
        self.alerter.alert(Alert(window.job, window.window_key, str(RunState.MISSED), reason))
        report.alerted.append(window.window_key)


def enabled_specs(runtime: Runtime) -> list[JobSpec]:
    """The runtime's enabled jobs, less those paused or removed in the schedules table, plus
    jobs added there at runtime (:func:`agentcron.catalogue.watched_specs`)."""
    from agentcron.catalogue import Catalogue, watched_specs
    from agentcron.ledger.schedules import ScheduleStore

    catalogue = Catalogue(runtime.settings, getattr(runtime, "file_jobs", []))
    return watched_specs(runtime.specs(), ScheduleStore(runtime.ledger.engine, runtime.clock),
                         catalogue)  # fmt: skip


def build_watchdog(runtime: Runtime, app: Any, alerter: Alerter | None = None) -> Watchdog:
    """A watchdog on the runtime's ledger and leases, publishing through ``app``."""
    from agentcron.alerts import safe_alerter
    from agentcron.jobs import ASYNC_QUEUE, SYNC_QUEUE

    settings = runtime.settings
    queues = sorted({SYNC_QUEUE, ASYNC_QUEUE, *(s.queue for s in runtime.specs())})
    return Watchdog(runtime.ledger, CeleryPublisher(app, signing_key=settings.signing_key),
                    runtime.clock,
                    alerter or safe_alerter(settings), runtime.leases,
                    config=WatchdogConfig.from_settings(settings),
                    queued=queue_inspector(settings, queues))  # fmt: skip


def run_watchdog(runtime: Runtime, app: Any, alerter: Alerter | None = None) -> WatchReport:
    """One watchdog pass over the runtime's enabled jobs (the periodic task and ``check``)."""
    report = build_watchdog(runtime, app, alerter).check(enabled_specs(runtime))
    from agentcron.watch.metrics import record_watch

    record_watch(report)
    return report
