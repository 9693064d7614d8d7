"""Beat with 1,000,000 every-minute jobs: start-up, peak RSS and (if it fits) one boundary.

    .venv/bin/python -m bench.beat_million [--n 1000000] [--sources file,table] [--timeout 180]

One ``celery beat`` process per source (the schedule file, or the ``schedules`` table with an
empty file), as ``python -m bench beat`` starts them (``bench.section_beat.run_scheduler``):
start-up until "beat active", the time from the next minute boundary until all N are on a
private Redis (or how many were there at the timeout), and the process's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench import beat_emission
from bench.harness import Stats, table
from bench.section_beat import Scheduler, run_scheduler


def main() -> None:
    """Run each source once and print one row each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--sources", default="file,table")
    parser.add_argument("--timeout", type=float, default=180.0)
    options = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-million-") as folder:
        broker = beat_emission.Broker(Path(folder))
        try:
            for source in options.sources.split(","):
                result = Scheduler("agentcron", options.n, source=source)
                try:
                    run_scheduler(result, Path(folder), broker, 1, options.timeout,
                                  startup_limit=1800)  # fmt: skip
                except RuntimeError as exc:
                    log = Path(folder) / f"agentcron-{options.n}" / "beat.log"
                    print(f"{source}: {exc}\n{log.read_text()[-2000:]}", flush=True)
                    continue
                done = Stats.of(result.done).text(2, "s") if result.done else (
                    f"not done after {options.timeout:.0f} s ({max(result.missed):,} queued)")
                rows.append([source, f"{options.n:,}", f"{result.startup[0]:.1f}", done,
                             f"{result.rss_mb[0]:.0f}"])  # fmt: skip
                print(rows[-1], flush=True)
        finally:
            broker.close()
            beat_emission.reset_ledger()  # a million schedules left behind slow every worker
    print(f"\nLoad average before (1, 5, 15 min): {load}; after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("\n".join(table(["jobs from", "N", "start-up (s)", "all N on the broker after the "
                           "boundary", "beat peak RSS (MB)"], rows)))  # fmt: skip


if __name__ == "__main__":
    main()
