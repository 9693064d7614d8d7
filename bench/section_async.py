"""``python -m bench async``: guarded async agentcron vs arq (its own environment), interleaved.

Trials alternate between the systems (a fresh warm worker per trial, ``bench.async_agents.measure``)
so a change in the shared machine's load hits both alike. arq's worker and its producer run from
arq's own environment (``--arq-python``, default ``bench/.arqenv/bin/python``); when it is
missing the table says so and the target is not measured. Then the peak RSS of one async worker
holding 10,000 guarded runs in flight, with glibc's default allocator arenas and with
``MALLOC_ARENA_MAX=2`` (why readings differ between runs).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import async_agents as aa
from bench.environment import arq_environment
from bench.harness import Section, Stats, Target, not_measured, quick_note, ratio, ratio_text, table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARQ_PYTHON = ROOT / "bench" / ".arqenv" / "bin" / "python"
ARQ_HELP = ("create it: python3 -m venv bench/.arqenv && bench/.arqenv/bin/pip install "
            "'arq==0.28.*'")  # fmt: skip
RSS_N = 10_000


@dataclass(frozen=True)
class Plan:
    """Sizes and trial counts of one async section."""

    runs: int
    trials: int
    rss_readings: int
    extras: bool  # the pool alone and Celery threads rows

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        """--quick: 1,000 runs x 3 trials each, one RSS reading of each allocator setting."""
        return cls(1000, 3, 1, False) if quick else cls(2000, 5, 3, True)


class ArqProducer:
    """A long-lived producer in arq's environment: enqueues on request, outside any clock."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen([str(python), "-m", "bench.arq_anchor"], cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)  # fmt: skip
        self._expect("ready")

    def _expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"arq producer said {line!r}, expected {word!r}")

    def __call__(self, n: int, _trial: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        self._expect("done")

    def close(self) -> None:
        """End the producer."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


System = tuple[str, list[str], dict[str, str], Callable[[int, int], None]]


def _systems(schedule: Path, plan: Plan) -> list[System]:
    systems: list[System] = [
        ("agentcron, 1 async worker process, guards on",
         aa._celery("-Q", "agentcron.async", "-n", "bench@async"), aa.agentcron_env(schedule, 1000),
         lambda k, t: aa.agentcron_enqueue("bench_async", k, t))]  # fmt: skip
    if plan.extras:
        systems += [
            ("agentcron pool alone (guards off), 1 process",
             aa._celery("-Q", aa.PLAIN_QUEUE, "-I", "bench.async_agents", "-c", "1000"),
             {"AGENTCRON_WORKER_POOL": "async"},
             lambda k, t: aa.celery_enqueue(k, t, "bench.pool_only")),
            ("Celery threads -c 100, asyncio.run per task",
             aa._celery("-Q", aa.PLAIN_QUEUE, "-I", "bench.async_agents", "-P", "threads",
                        "-c", "100"), {}, aa.celery_enqueue),
        ]  # fmt: skip
    return systems


def run(quick: bool, section: Section, arq_python: Path = DEFAULT_ARQ_PYTHON) -> None:
    """Fill ``section`` with the async table, the RSS readings and their two targets."""
    from agentcron.ledger.store import Ledger

    plan = Plan.for_mode(quick)
    Ledger(aa.POSTGRES_URL).upgrade()
    schedule = Path(tempfile.mkdtemp(prefix="bench-")) / "beat_schedule.py"
    schedule.write_text(aa.SCHEDULE)
    systems = _systems(schedule, plan)
    arq_label = arq_environment(arq_python)
    producer = None
    if arq_label is not None:
        producer = ArqProducer(arq_python)
        systems.append((f"arq 1 process, max_jobs=1000 ({arq_label}, its own env)",
                        [str(arq_python.with_name("arq")), "bench.arq_anchor.ArqSettings"], {},
                        producer))  # fmt: skip
    rates: dict[str, list[float]] = {name: [] for name, *_ in systems}
    cpu: dict[str, list[float]] = {name: [] for name, *_ in systems}
    try:
        for _ in range(plan.trials):
            for name, argv, env, enqueue in systems:
                split: dict[str, float] = {}
                rates[name] += aa.measure(argv, env, enqueue, plan.runs, 1, cpu=split)
                cpu[name].append(split.get("worker main", 0.0))
                print(f"{name}: {rates[name][-1]:.1f} runs/s, worker CPU {cpu[name][-1]:.3f} "
                      "ms/run", flush=True)  # fmt: skip
    finally:
        if producer is not None:
            producer.close()
    _throughput(section, plan, quick, rates, arq_label, arq_python, cpu)
    _rss(section, schedule, plan)


def _throughput(section: Section, plan: Plan, quick: bool, rates: dict[str, list[float]],
                arq_label: str | None, arq_python: Path,
                cpu: dict[str, list[float]]) -> None:  # fmt: skip
    names = list(rates)
    ours = Stats.of(rates[names[0]])
    rows = []
    for name in names:
        stats = Stats.of(rates[name])
        vs = "1.00x" if name == names[0] else ratio_text(ratio(ours.median, stats.median))
        per_run = Stats.of(cpu[name]).text(3, "ms") if cpu.get(name) else "—"
        rows.append([name, f"{plan.runs:,}", stats.text(1, "runs/s"), vs, per_run])
    if arq_label is None:
        rows.append(["arq", "—", f"arq missing at {arq_python}: {ARQ_HELP}", "—", "—"])
    section.lines += table(["system", "N", "runs/s: median (min-max, trials)",
                            "agentcron / this", "worker process CPU per run"], rows)  # fmt: skip
    section.lines += ["", "Runs/s are timed from the first enqueue to the last run's count "
                      "(each system's own producer: beat's publisher for agentcron, arq's "
                      "`enqueue_job` for arq); the CPU column is the worker process alone "
                      "(user + system, /proc), the producer not included."]  # fmt: skip
    note = quick_note(quick, plan.runs, 2000)
    goal = ">= 1.3x arq"
    if arq_label is None:
        section.targets.append(not_measured("async-vs-arq", goal, f"arq missing: {ARQ_HELP}"))
        return
    arq = Stats.of(rates[names[-1]])
    value = ratio(ours.median, arq.median)
    low_high = f"{ours.low / arq.high:.2f}-{ours.high / arq.low:.2f}x"
    figure = f"{ratio_text(value)} ({ours.median:.0f} vs {arq.median:.0f} runs/s; range {low_high})"
    section.targets.append(Target("async-vs-arq", figure, goal,
                                  value is not None and value >= 1.3, note))  # fmt: skip


def _rss(section: Section, schedule: Path, plan: Plan) -> None:
    readings: dict[str, list[tuple[float, float]]] = {"glibc default arenas": [],
                                                      "MALLOC_ARENA_MAX=2": []}  # fmt: skip
    for _ in range(plan.rss_readings):
        readings["glibc default arenas"].append(aa.peak_rss(schedule, RSS_N))
        readings["MALLOC_ARENA_MAX=2"].append(
            aa.peak_rss(schedule, RSS_N, extra_env={"MALLOC_ARENA_MAX": "2"}))
        print(f"RSS: {readings}", flush=True)
    rows = []
    for label, values in readings.items():
        rows.append([f"10,000 guarded runs, {label}", Stats.of([mb for mb, _ in values]).text(1, "MB"),
                     Stats.of([s for _, s in values]).text(1, "s")])  # fmt: skip
    if plan.extras:
        mb, seconds = aa.peak_rss(schedule, RSS_N, guarded=False)
        rows.append(["10,000 runs on the pool alone (guards off)", f"{mb:.0f} MB",
                     f"{seconds:.1f} s"])  # fmt: skip
    section.lines += ["", *table(["in flight", "peak RSS (VmHWM)", "time until all were in flight"],
                                 rows)]  # fmt: skip
    default = Stats.of([mb for mb, _ in readings["glibc default arenas"]])
    section.targets.append(Target("async-rss", default.text(1, "MB"), "< 300 MB with 10,000 "
                                  "guarded runs in flight", default.median < 300))  # fmt: skip
