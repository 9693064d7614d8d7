"""Prometheus series of the outbox (on the default registry, beside agentcron.series).

| series | type | labels |
|---|---|---|
| ``agentcron_deliveries`` (rows in the ledger now) | gauge | state, kind |
| ``agentcron_delivery_oldest_pending_seconds`` | gauge | |
| ``agentcron_delivery_attempts_total`` (sends tried, by how they ended) | counter | kind, outcome |
| ``agentcron_deliveries_failed_total`` (given up: alerted) | counter | kind |
| ``agentcron_delivery_lag_seconds`` (sent - written with the success) | histogram | kind |
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agentcron.delivery.outbox import STATES, Outbox
from agentcron.delivery.targets import TargetKind
from agentcron.series import LAG_BUCKETS

LAG = (*LAG_BUCKETS, 7200, 21600, 86400)


class DeliveryMetrics:
    """The outbox's series on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.rows = Gauge("agentcron_deliveries", "Delivery rows by state and target kind.",
                          ["state", "kind"], multiprocess_mode="livemax", **kw)  # fmt: skip
        self.oldest = Gauge("agentcron_delivery_oldest_pending_seconds",
                            "Age of the oldest pending delivery.", multiprocess_mode="livemax",
                            **kw)  # fmt: skip
        self.attempts = Counter("agentcron_delivery_attempts", "Sends tried, by outcome.",
                                ["kind", "outcome"], **kw)  # fmt: skip
        self.failed = Counter("agentcron_deliveries_failed", "Deliveries given up (alerted).",
                              ["kind"], **kw)  # fmt: skip
        self.lag = Histogram("agentcron_delivery_lag_seconds",
                             "Sent time minus the time the run's success wrote it.", ["kind"],
                             buckets=LAG, **kw)  # fmt: skip

    def refresh(self, outbox: Outbox, now: datetime) -> None:
        """Set the gauges from the table (every state and kind, zeros included)."""
        counts = outbox.counts()
        for state in STATES:
            for kind in TargetKind:
                self.rows.labels(state, str(kind)).set(counts.get((state, str(kind)), 0))
        oldest = outbox.oldest_pending()
        self.oldest.set(0 if oldest is None else max((now - oldest).total_seconds(), 0.0))


_default: DeliveryMetrics | None = None
_lock = threading.Lock()


def get_delivery_metrics() -> DeliveryMetrics:
    """The process's outbox series (made on first use)."""
    global _default
    with _lock:
        if _default is None:
            _default = DeliveryMetrics()
        return _default
