"""The Prometheus series of agentcron: one registry object, the metrics HTTP server.

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

Recorded by :mod:`agentcron.watch.metrics` (run outcomes, the beat, the watchdog), the
dead-letter sink and the reference clock. Spend and fleet-wide limits: see :mod:`agentcron.spend.prom`.

Prefork workers: set ``PROMETHEUS_MULTIPROC_DIR`` (an empty folder) before the worker starts;
children write their samples there and :func:`serve` aggregates them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("agentcron.metrics")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


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
