"""``agentcron up``'s closing statistics: one line per worker kind, totals over its processes.

Every worker process (each prefork child, the async worker's process) logs one
``run statistics: runs=…, successes=…, …, mean_duration=…, p95_duration=…`` line when it stops;
a prefork worker's main process, which records what its children ran, adds ``settled=…``.
:func:`combine` adds the counters up, weights the mean by runs and keeps the largest p95.
"""

from __future__ import annotations

from collections.abc import Iterable

STATS_MARK = "run statistics:"
SHOWN = ("runs", "successes", "failures", "retries", "duplicates", "skipped", "missed",
         "cancelled", "timeouts", "stale")  # fmt: skip


def parse_stats(line: str) -> dict[str, float] | None:
    """The numbers of one ``run statistics:`` log line (None when there is none)."""
    if STATS_MARK not in line:
        return None
    values: dict[str, float] = {}
    for part in line.split(STATS_MARK, 1)[1].split(","):
        name, _, raw = part.strip().partition("=")
        try:
            values[name] = float(raw)
        except ValueError:
            continue
    return values


def combine(lines: Iterable[dict[str, float]]) -> tuple[int, dict[str, float]]:
    """(processes, totals) of several processes' statistics."""
    processes, totals, weighted, timed = 0, dict.fromkeys(SHOWN, 0.0), 0.0, 0.0
    p95 = 0.0
    for stats in lines:
        # A prefork worker's main process (``settled=``) records the runs its children ran
        # (``deferred=``, timed there): it counts their outcomes, not as a process of its own.
        recorder = "settled" in stats
        processes += 0 if recorder else 1
        for name in SHOWN:
            totals[name] += stats.get(name, 0.0)
        durations = stats.get("deferred", 0.0) + (0.0 if recorder else stats.get("runs", 0.0))
        weighted += stats.get("mean_duration", 0.0) * durations
        timed += durations
        p95 = max(p95, stats.get("p95_duration", 0.0))
    totals["mean_duration"] = weighted / timed if timed else 0.0
    totals["p95_duration"] = p95
    return processes, totals


def describe(label: str, processes: int, totals: dict[str, float]) -> str:
    """``label, N processes: runs=… successes=… … mean=…s p95=…s`` (zero extras left out)."""
    always = ("runs", "successes", "failures", "retries", "duplicates")
    parts = [f"{name}={totals[name]:.0f}" for name in SHOWN
             if name in always or totals[name]]  # fmt: skip
    parts.append(f"mean={totals['mean_duration']:.2f}s p95={totals['p95_duration']:.2f}s")
    return f"{label}, {processes} process{'es' if processes != 1 else ''}: {' '.join(parts)}"
