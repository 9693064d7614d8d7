"""Recorders of the Prometheus series (:mod:`agentcron.series`): guard outcomes, the beat's
emission lag and what a watchdog pass did.

- :class:`RunObserver` (a ``Guard.observers`` entry, attached by :func:`install`): runs by state,
  duration, start lag, duplicates, overlap skips, lost leases; pings and failure alerts.
- :class:`MeteredPublisher`: the beat's emission lag.
- :func:`record_watch`: windows the watchdog re-enqueued or marked missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentcron.clock import Clock
from agentcron.emission.publisher import Outgoing, Publisher
from agentcron.ledger.records import RunState
from agentcron.series import Metrics, get_metrics

if TYPE_CHECKING:
    from agentcron.alerts import Alerter
    from agentcron.guard import Guard, Outcome
    from agentcron.jobs import JobSpec
    from agentcron.ledger.store import Ledger
    from agentcron.messages import RunMessage
    from agentcron.watch.report import WatchReport

log = logging.getLogger("agentcron.metrics")
_ALERT_STATES = (RunState.FAILED, RunState.TIMEOUT)


def _lease_lost(outcome: Outcome) -> bool:
    text = f"{outcome.error or ''} {outcome.detail}"
    return "was lost" in text or "fenced out" in text


class RunObserver:
    """A ``Guard.observers`` entry: metrics, pings and failure alerts for each delivery.

    Reading the run's row (duration, start lag when the outcome lacks them), pings and alerts
    happen on a helper thread, so an async worker's event loop never waits on the database or
    the network; a run that only needs counting is counted right here.
    """

    def __init__(self, ledger: Ledger, metrics: Metrics | None = None,
                 alerter: Alerter | None = None, *, background: bool = True) -> None:  # fmt: skip
        self.ledger = ledger
        self.metrics = metrics or get_metrics()
        self.alerter = alerter
        self._pool = ThreadPoolExecutor(1, "agentcron-metrics") if background else None

    def __call__(self, outcome: Outcome, spec: JobSpec, message: RunMessage) -> None:
        """Count the outcome; time the run and ping/alert off the caller's thread."""
        m, job = self.metrics, spec.name
        state = "duplicate" if outcome.duplicate else str(outcome.state or "none")
        m.runs.labels(job, state).inc()
        if outcome.duplicate:
            m.duplicates.labels(job).inc()
        if outcome.state is RunState.SKIPPED:
            m.overlap_skips.labels(job).inc()
        if outcome.state is RunState.MISSED:
            m.missed.labels(job).inc()
        if _lease_lost(outcome):
            m.renewals_failed.labels(job).inc()
        if outcome.state is None:
            return
        if self._pool is None or (outcome.started_at is not None and not self._calls_out(
                outcome, job)):  # fmt: skip
            self.finished(outcome, message)  # only in-memory observations: no thread hop
        else:
            self._pool.submit(self.finished, outcome, message)

    def _calls_out(self, outcome: Outcome, job: str) -> bool:
        """Whether :meth:`finished` would make a network call (a ping or an alert)."""
        if self.alerter is None:
            return False
        return outcome.state in _ALERT_STATES or job in self.alerter.pings

    def finished(self, outcome: Outcome, message: RunMessage) -> None:
        """Duration and start lag (from the outcome, else the ledger row); the job's ping; an
        alert on failure."""
        started, duration = outcome.started_at, outcome.duration
        if started is None:
            try:
                row = self.ledger.get(message.job, message.window_start)
            except Exception as exc:
                log.warning("metrics: cannot read %s (%s)", message.window_key,
                            type(exc).__name__)  # fmt: skip
                row = None
            if row is not None and row.state is outcome.state:
                started, duration = row.started_at, row.duration
        if started is not None:
            self.metrics.start_lag.labels(message.job).observe(
                max((started - message.slot).total_seconds(), 0.0))
            if duration is not None:
                self.metrics.duration.labels(message.job).observe(duration)
        if self.alerter is None:
            return
        if outcome.state is RunState.SUCCEEDED:
            self.alerter.ping(message.job, "success")
        elif outcome.state in _ALERT_STATES:
            from agentcron.alerts import Alert

            self.alerter.alert(Alert(message.job, message.window_key, str(outcome.state),
                                     outcome.error or outcome.detail))  # fmt: skip

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for the background work queued so far (tests, shutdown)."""
        if self._pool is not None:
            self._pool.submit(lambda: None).result(timeout)


class MeteredPublisher:
    """A :class:`~agentcron.emission.publisher.Publisher` that records the beat's emission lag.

    One observation per distinct slot of a batch (``now - slot``, scheduled windows only), so
    10,000 windows due in the same minute cost one observation. The inner publisher's fast
    ``publish_windows`` path stays available when it has one.
    """

    def __init__(self, inner: Publisher, clock: Clock, metrics: Metrics | None = None) -> None:
        self.inner = inner
        self.clock = clock
        self.metrics = metrics or get_metrics()
        fast = getattr(inner, "publish_windows", None)
        if fast is not None:
            self.publish_windows = self._metered(fast)

    def publish(self, batch: Sequence[Outgoing]) -> None:
        """Publish, then observe the lag of each scheduled slot."""
        self.inner.publish(batch)
        self._observe({o.message.slot for o in batch if o.message.trigger == "schedule"})

    def _metered(self, fast: Callable[[Sequence[Any]], None]) -> Callable[[Sequence[Any]], None]:
        def publish_windows(batch: Sequence[Any]) -> None:
            fast(batch)
            self._observe({w.slot for _task, _queue, w in batch if w.trigger == "schedule"})

        return publish_windows

    def _observe(self, slots: set[datetime]) -> None:
        now = self.clock.now()
        for slot in slots:
            self.metrics.beat_lag.observe(max((now - slot).total_seconds(), 0.0))


def record_watch(report: WatchReport, metrics: Metrics | None = None) -> None:
    """Count what a watchdog pass re-enqueued and marked missed."""
    m = metrics or get_metrics()
    for key in report.missed:
        m.missed.labels(key.split("@", 1)[0]).inc()
    for key in report.enqueued + report.republished:
        m.reenqueued.labels(key.split("@", 1)[0]).inc()


def install(guard: Guard, ledger: Ledger, alerter: Alerter | None = None) -> RunObserver:
    """Attach a :class:`RunObserver` to ``guard`` (once); the worker's one-line hook."""
    for observer in guard.observers:
        if isinstance(observer, RunObserver):
            return observer
    if alerter is None:
        from agentcron.alerts import safe_alerter

        alerter = safe_alerter(guard.settings)
    observer = RunObserver(ledger, alerter=alerter)
    from agentcron.spend.prom import install as install_spend

    install_spend(guard, alerter)  # tokens, cost, budgets, limits; budget alerts
    guard.observers.append(observer)
    return observer
