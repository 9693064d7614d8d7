"""A sync monitoring agent: scan the shipped server log for anomalies.

Deterministic work on data in the repository (no network, no LLM): per-minute error rates and
latency, flagged against the log's own baseline.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentcron.context import RunContext

DATA = Path(__file__).parent / "data"


def scan_log(text: str, error_threshold: float = 0.2, latency_factor: float = 4.0) -> dict[str, Any]:
    """Minutes whose 5xx ratio exceeds ``error_threshold`` or whose median latency exceeds
    ``latency_factor`` times the log's overall median."""
    by_minute: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        stamp, _method, _path, status, latency = parts
        by_minute[stamp[:16]].append((int(status), int(latency.removesuffix("ms"))))
    all_latencies = [lat for rows in by_minute.values() for _, lat in rows]
    baseline = statistics.median(all_latencies) if all_latencies else 0
    anomalies: list[dict[str, Any]] = []
    for minute, rows in sorted(by_minute.items()):
        errors = sum(1 for status, _ in rows if status >= 500) / len(rows)
        median_ms = statistics.median(lat for _, lat in rows)
        if errors > error_threshold:
            anomalies.append({"minute": minute, "kind": "error_rate", "value": round(errors, 3)})
        if baseline and median_ms > latency_factor * baseline:
            anomalies.append({"minute": minute, "kind": "latency", "value": median_ms})
    return {"minutes": len(by_minute), "baseline_ms": baseline, "anomalies": anomalies}


def scan(ctx: RunContext) -> dict[str, Any]:
    """Agent entry point: scan the log named in the job config (default: the shipped one)."""
    path = DATA / str(ctx.config.get("log", "server.log"))
    report = scan_log(path.read_text(), float(ctx.config.get("error_threshold", 0.2)))
    ctx.log.info("scanned %s: %d anomalies", path.name, len(report["anomalies"]))
    return {"window": ctx.window_key, **report, "anomalies": report["anomalies"][:20]}
