"""Prometheus metrics (prometheus-client), recorded from guard outcomes, the beat and the watchdog.

| series | type | labels |
|---|---|---|
| ``agentcron_runs_total`` | counter | job, state (a terminal state, or ``duplicate``) |
| ``agentcron_run_duration_seconds`` | histogram | job |
| ``agentcron_start_lag_seconds`` (start - slot) | histogram | job |
| ``agentcron_windows_missed_total`` | counter | job |
| ``agentcron_windows_reenqueued_total`` | counter | job |
| ``agentcron_duplicates_suppressed_total`` | counter | job |
| ``agentcron_overlap_skips_total`` | counter | job |
| ``agentcron_lease_renewals_failed_total`` | counter | job |
| ``agentcron_queue_depth`` | gauge | queue |
| ``agentcron_queue_workers`` (from heartbeats, set by the leading beat) | gauge | queue |
| ``agentcron_beat_leader`` (1 while this beat leads) | gauge | |
| ``agentcron_clock_offset_seconds`` (reference time - this process's clock) | gauge | |
| ``agentcron_beat_emission_lag_seconds`` (publish - slot) | histogram | |
| ``agentcron_dead_letters_total`` (agentcron.deadletters) | counter | queue, kind |

Spend and fleet-wide limits: see :mod:`agentcron.spend.prom`.

Prefork workers: set ``PROMETHEUS_MULTIPROC_DIR`` (an empty folder) before the worker starts;
children write their samples there and :func:`serve` aggregates them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from agentcron.beat.publisher import Outgoing, Publisher
from agentcron.clock import Clock
from agentcron.ledger.records import RunState

if TYPE_CHECKING:
    from agentcron.alerts import Alerter
    from agentcron.guard import Outcome
    from agentcron.jobs import JobSpec
    from agentcron.ledger.store import Ledger
    from agentcron.messages import RunMessage
    from agentcron.watchdog import WatchReport

log = logging.getLogger("agentcron.metrics")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
_ALERT_STATES = (RunState.FAILED, RunState.TIMEOUT)


class Metrics:
    """Every agentcron series, on one registry (the default one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.registry = registry
        self.runs = Counter("agentcron_runs", "Run deliveries by job and outcome state.",
                            ["job", "state"], **kw)  # fmt: skip
        self.duration = Histogram("agentcron_run_duration_seconds", "Run duration.", ["job"],
                                  buckets=DURATION_BUCKETS, **kw)  # fmt: skip
        self.start_lag = Histogram("agentcron_start_lag_seconds", "Run start minus its slot.",
                                   ["job"], buckets=LAG_BUCKETS, **kw)  # fmt: skip
        self.missed = Counter("agentcron_windows_missed", "Windows marked missed.", ["job"], **kw)
        self.reenqueued = Counter("agentcron_windows_reenqueued",
                                  "Windows the watchdog published again.", ["job"], **kw)
        self.duplicates = Counter("agentcron_duplicates_suppressed",
                                  "Deliveries dropped as duplicates.", ["job"], **kw)
        self.overlap_skips = Counter("agentcron_overlap_skips",
                                     "Windows skipped by the overlap policy.", ["job"], **kw)
        self.renewals_failed = Counter("agentcron_lease_renewals_failed",
                                       "Runs whose lease renewal failed.", ["job"], **kw)
        self.queue_depth = Gauge("agentcron_queue_depth", "Messages waiting on a queue.",
                                 ["queue"], multiprocess_mode="livemax", **kw)  # fmt: skip
        self.queue_workers = Gauge("agentcron_queue_workers", "Live workers (heartbeats) per queue.",
                                   ["queue"], multiprocess_mode="livemax", **kw)  # fmt: skip
        self.beat_leader = Gauge("agentcron_beat_leader", "1 while this beat leads, else 0.",
                                 multiprocess_mode="livemax", **kw)  # fmt: skip
        self.clock_offset = Gauge("agentcron_clock_offset_seconds",
                                  "Reference time minus this process's clock (refclock.py).",
                                  multiprocess_mode="liveall", **kw)  # fmt: skip
        self.beat_lag = Histogram("agentcron_beat_emission_lag_seconds",
                                  "Publish time minus the window's due time.",
                                  buckets=LAG_BUCKETS, **kw)  # fmt: skip
        self.dead_letters = Counter("agentcron_dead_letters",
                                    "Queue entries moved to the dead-letter store.",
                                    ["queue", "kind"], **kw)  # fmt: skip


_default: Metrics | None = None
_default_lock = threading.Lock()


def get_metrics() -> Metrics:
    """The process's metrics on the default registry (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


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
    """A :class:`~agentcron.beat.publisher.Publisher` that records the beat's emission lag.

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


def set_queue_depths(depths: Mapping[str, int], metrics: Metrics | None = None) -> None:
    """Publish the current depth of each queue."""
    m = metrics or get_metrics()
    for queue, depth in depths.items():
        m.queue_depth.labels(queue).set(depth)


def set_queue_workers(workers: Mapping[str, int], metrics: Metrics | None = None) -> None:
    """Publish how many live workers consume each queue."""
    m = metrics or get_metrics()
    for queue, count in workers.items():
        m.queue_workers.labels(queue).set(count)


def multiprocess_mode() -> bool:
    """True when prometheus-client writes samples to ``PROMETHEUS_MULTIPROC_DIR``."""
    from prometheus_client import values

    return getattr(values.ValueClass, "__name__", "") == "MmapedValue"


def serve(port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread (aggregating prefork children in
    multiprocess mode); returns the server, or None when ``port`` is 0."""
    if port <= 0:
        return None
    if registry is None and multiprocess_mode():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr, registry=registry or _default_registry())
    log.info("metrics on http://%s:%d/metrics", addr, port)
    return server


def _default_registry() -> CollectorRegistry:
    from prometheus_client import REGISTRY

    return REGISTRY


def install(guard: Any, ledger: Ledger, alerter: Alerter | None = None) -> RunObserver:
    """Attach a :class:`RunObserver` to ``guard`` (once); the worker's one-line hook."""
    for observer in getattr(guard, "observers", []):
        if isinstance(observer, RunObserver):
            return observer
    if alerter is None:
        from agentcron.alerts import safe_alerter

        alerter = safe_alerter(guard.settings)
    observer = RunObserver(ledger, alerter=alerter)
    if hasattr(guard, "spend") and hasattr(guard, "limits"):
        from agentcron.spend.prom import install as install_spend

        install_spend(guard, alerter)  # tokens, cost, budgets, limits; budget alerts
    if hasattr(guard, "observers"):
        guard.observers.append(observer)
    else:
        log.warning("this guard has no observers hook: run metrics are not recorded")
    return observer
