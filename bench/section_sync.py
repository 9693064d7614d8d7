"""``python -m bench sync``: a guarded no-op sync agent vs a plain Celery no-op, interleaved.

The same two systems as ``bench.sync_overhead`` (prefork ``-c 2``, one producer publishing N
messages, batched), one warm worker per trial, trials alternating between the two.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import async_agents as aa
from bench import sync_overhead as so
from bench.harness import Section, Stats, Target, quick_note, ratio, ratio_text, table


@dataclass(frozen=True)
class Plan:
    """Sizes and trial counts of one sync section."""

    runs: int
    trials: int

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        """--quick: 1,000 runs x 3 trials each."""
        return cls(1000, 3) if quick else cls(5000, 5)


def run(quick: bool, section: Section) -> None:
    """Fill ``section`` with the sync table and its target (>= 0.8x plain Celery)."""
    from agentcron.ledger.store import Ledger

    plan = Plan.for_mode(quick)
    Ledger(aa.POSTGRES_URL).upgrade()
    schedule = Path(tempfile.mkdtemp(prefix="bench-")) / "beat_schedule.py"
    schedule.write_text(so.SCHEDULE)
    prefork = ("-P", "prefork", "-c", "2", "-I", "bench.sync_overhead")
    guarded = "agentcron guarded no-op, prefork -c 2"
    plain = "plain Celery no-op, prefork -c 2"
    rates: dict[str, list[float]] = {guarded: [], plain: []}
    for _ in range(plan.trials):
        rates[guarded] += aa.measure(
            aa._celery("-Q", "agentcron.sync", *prefork), aa.agentcron_env(schedule),
            lambda k, t: aa.agentcron_enqueue("bench_noop", k, t, sync=True), plan.runs, 1)
        rates[plain] += aa.measure(aa._celery("-Q", aa.PLAIN_QUEUE, *prefork), {},
                                   lambda k, t: aa.celery_enqueue(k, t, "bench.noop"),
                                   plan.runs, 1)  # fmt: skip
        print(f"sync: {rates}", flush=True)
    ours, theirs = Stats.of(rates[guarded]), Stats.of(rates[plain])
    value = ratio(ours.median, theirs.median)
    section.lines += table(["system", "N", "runs/s: median (min-max, trials)", "agentcron / this"],
                           [[guarded, f"{plan.runs:,}", ours.text(0, "runs/s"), "1.00x"],
                            [plain, f"{plan.runs:,}", theirs.text(0, "runs/s"),
                             ratio_text(value)]])  # fmt: skip
    section.targets.append(Target("sync-vs-celery", ratio_text(value), ">= 0.8x plain Celery",
                                  value is not None and value >= 0.8,
                                  quick_note(quick, plan.runs, 5000)))  # fmt: skip
