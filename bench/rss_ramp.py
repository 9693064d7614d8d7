"""Why peak RSS readings of 10,000 guarded async runs differ: ramp speed and malloc arenas.

    .venv/bin/python -m bench.rss_ramp [--runs 10000] [--slices 1,20] \
        [--variants default,MALLOC_ARENA_MAX=2,GLIBC_TUNABLES=glibc.malloc.hugetlb=1]

For each (slices, variant) pair one guarded async worker (as ``bench.async_agents --rss``) gets
the held runs published in ``slices`` equal parts, ``--gap`` seconds apart (1: all at once, the
benchmark's way), with the variant's one extra environment variable (``default``: none), e.g.
fewer malloc arenas, or glibc's malloc asking for transparent huge pages as a kernel with THP
``always`` would give it. Printed: the peak RSS (VmHWM), the RSS
once all runs are in flight (VmRSS) and again ``--settle`` seconds later, and the ramp time. A
peak well above the settled RSS is transient memory of the ramp (messages taken but not yet
started), not the cost of the runs in flight.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from agentcron.emission.publisher import Outgoing
from agentcron.messages import ASYNC_TASK
from bench import async_agents as aa


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def reading(schedule: Path, n: int, slices: int, gap: float, variant: str,
            settle: float) -> dict[str, float]:  # fmt: skip
    """One worker, ``n`` held runs published in ``slices`` parts: its memory figures."""
    aa._store().flushdb()
    aa._clean_ledger()
    name, _, value = variant.partition("=")
    env = aa.agentcron_env(schedule, n) | ({} if variant == "default" else {name: value})
    proc = aa._start(aa._celery("-Q", "agentcron.async", "-n", "ramp@bench"), env)
    try:
        aa.agentcron_enqueue("bench_async", 1, -1)
        aa._wait(lambda: aa._counter() >= 1, 60, "warm-up run")
        began = time.monotonic()
        messages = aa._messages("bench_hold", n, 0)
        size = -(-n // slices)
        for first in range(0, n, size):
            aa._publisher().publish([Outgoing(ASYNC_TASK, "agentcron.async", m)
                                     for m in messages[first : first + size]])  # fmt: skip
            if first + size < n:
                time.sleep(gap)
        aa._wait(lambda: aa._counter(aa.STARTED) >= n, 900, f"{n} in flight")
        ramp = time.monotonic() - began
        rss_now = _status_mb(proc.pid, "VmRSS")
        time.sleep(settle)
        return {"peak": _status_mb(proc.pid, "VmHWM"), "in_flight": rss_now,
                "settled": _status_mb(proc.pid, "VmRSS"), "ramp": ramp}
    finally:
        proc.kill()
        proc.wait()
        aa._clean_ledger()
        aa._store().flushdb()


def main() -> None:
    """Every (slices, variant) pair, one reading each, printed as a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--slices", default="1,20")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between slices")
    parser.add_argument("--variants", default="default,MALLOC_ARENA_MAX=2",
                        help="comma-separated NAME=VALUE (or 'default') for the worker")
    parser.add_argument("--settle", type=float, default=10.0)
    options = parser.parse_args()
    from agentcron.ledger.store import Ledger

    Ledger(aa.POSTGRES_URL).upgrade()
    schedule = Path(tempfile.mkdtemp(prefix="bench-")) / "beat_schedule.py"
    schedule.write_text(aa.SCHEDULE)
    print("| slices | worker environment | ramp (s) | peak RSS (MB) | RSS all in flight (MB) "
          "| RSS settled (MB) |\n|---|---|---|---|---|---|", flush=True)  # fmt: skip
    for slices in (int(s) for s in options.slices.split(",")):
        for variant in options.variants.split(","):
            r = reading(schedule, options.runs, slices, options.gap, variant, options.settle)
            print(f"| {slices} | {variant} | {r['ramp']:.1f} | {r['peak']:.1f} | "
                  f"{r['in_flight']:.1f} | {r['settled']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
