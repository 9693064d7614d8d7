"""Scale-out: guarded runs/s with 1, 2 and 4 worker processes on this machine.

    .venv/bin/python -m bench.scaleout [--runs 1000] [--trials 3] [--async 1,2,4] [--sync 1,2]

async: K ``celery worker`` processes with the asyncio pool (``-c 1000`` each, guards on), the
200 ms I/O agent of ``bench.async_agents``. sync: K ``celery worker -P prefork -c 1`` processes
(one child each), the guarded no-op agent of ``bench.sync_overhead``. N runs are published the
way beat publishes them; the clock runs from the first publish until a Redis counter that each
run increments reaches N. Trials of the sizes alternate (K=1, K=2, … then again) so a change in
the shared machine's load hits every size; each trial starts fresh warm workers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import async_agents as aa
from bench.harness import Stats, table


def measure_many(argvs: Sequence[list[str]], env: dict[str, str],
                 enqueue: Callable[[int, int], None], n: int, trial: int) -> float:  # fmt: skip
    """Runs/s of one trial of ``n`` runs on ``len(argvs)`` warm worker processes."""
    store = aa._store()
    store.flushdb()
    aa._clean_ledger()
    procs = [aa._start(argv, env) for argv in argvs]
    try:
        enqueue(len(procs) * 4, -1 - trial)  # warm every process before the clock starts
        aa._wait(lambda: aa._counter() >= len(procs) * 4, 120, "warm-up runs")
        time.sleep(1)
        store.set(aa.COUNTER, 0)
        began = time.monotonic()
        enqueue(n, trial)
        aa._wait(lambda: aa._counter() >= n, 600, f"{n} runs")
        return n / (time.monotonic() - began)
    finally:
        for proc in procs:
            aa._stop(proc)
        aa._clean_ledger()


def async_argvs(k: int) -> list[list[str]]:
    """K async worker processes on the agentcron.async queue."""
    return [aa._celery("-Q", "agentcron.async", "-n", f"bench{i}@async") for i in range(k)]


def sync_argvs(k: int) -> list[list[str]]:
    """K prefork workers with one child each on the agentcron.sync queue."""
    return [aa._celery("-Q", "agentcron.sync", "-P", "prefork", "-c", "1", "-I",
                       "bench.sync_overhead", "-n", f"bench{i}@sync") for i in range(k)]  # fmt: skip


def run(runs: int, trials: int, async_sizes: Sequence[int], sync_sizes: Sequence[int],
        ) -> list[list[str]]:  # fmt: skip
    """Table rows: kind, processes, runs/s (median, spread), per process, x one process."""
    from agentcron.ledger.store import Ledger
    from bench import sync_overhead

    Ledger(aa.POSTGRES_URL).upgrade()
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    (folder / "async").mkdir()
    (folder / "sync").mkdir()
    async_schedule = folder / "async" / "beat_schedule.py"
    async_schedule.write_text(aa.SCHEDULE)
    sync_schedule = folder / "sync" / "beat_schedule.py"
    sync_schedule.write_text(sync_overhead.SCHEDULE)
    kinds = [("async", k, async_argvs(k), aa.agentcron_env(async_schedule, 1000),
              lambda m, t: aa.agentcron_enqueue("bench_async", m, t)) for k in async_sizes]
    kinds += [("sync", k, sync_argvs(k), aa.agentcron_env(sync_schedule),
               lambda m, t: aa.agentcron_enqueue("bench_noop", m, t, sync=True))
              for k in sync_sizes]  # fmt: skip
    rates: dict[tuple[str, int], list[float]] = {(kind, k): [] for kind, k, *_ in kinds}
    for trial in range(trials):
        for kind, k, argvs, env, enqueue in kinds:
            rate = measure_many(argvs, env, enqueue, runs, trial)
            rates[(kind, k)].append(rate)
            print(f"{kind} x{k}: {rate:.1f} runs/s (load {os.getloadavg()[0]:.2f})", flush=True)
    rows = []
    for (kind, k), values in rates.items():
        stats = Stats.of(values)
        one = Stats.of(rates[(kind, 1)]).median if (kind, 1) in rates else None
        scale = f"{stats.median / one:.2f}x" if one else "—"
        rows.append([kind, str(k), f"{runs:,}", stats.text(1, "runs/s"),
                     f"{stats.median / k:.1f}", scale])  # fmt: skip
    return rows


def main() -> None:
    """Run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--async", dest="async_sizes", default="1,2,4")
    parser.add_argument("--sync", dest="sync_sizes", default="1,2")
    options = parser.parse_args()
    sizes = [[int(x) for x in text.split(",") if x] for text in (options.async_sizes,
                                                                 options.sync_sizes)]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = run(options.runs, options.trials, sizes[0], sizes[1])
    print(f"\nLoad average before (1, 5, 15 min): {load}; after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("\n".join(table(["pool", "worker processes", "N", "runs/s: median (min-max, trials)",
                           "per process", "x one process"], rows)))  # fmt: skip


if __name__ == "__main__":
    main()
