"""``python -m bench sync``: guarded sync agents beside the peers a Celery user runs today.

Every system runs on ``celery worker -P prefork`` (``-c 2`` and ``-c 4``) over the same Redis
broker; one producer publishes N messages (batched), and we time until a Redis counter that each
run increments reaches N (``bench.async_agents.measure``: one warm worker per trial, trials
alternating between the systems). The peers (``bench.sync_overhead``): a plain Celery task,
Celery + celery-once ``QueueOnce`` (a Redis lock per message, graceful), ``QueueOnce`` + a Redis
idempotency record; and a 50 ms agent under agentcron, plain Celery and ``QueueOnce``. The floor
is a plain task making the guard's four round trips with no logic (``so.floor_noop``). The CPU
of the worker's main process and of its prefork children is read from /proc (``bench.cpu``);
the CPU target compares those two (PostgreSQL and Redis serve other work on a shared machine).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import async_agents as aa
from bench import sync_overhead as so
from bench.harness import Section, Stats, Target, quick_note, ratio, ratio_text, table

Enqueue = Callable[[int, int], None]
WORKER_GROUPS = ("worker main", "worker children")


@dataclass(frozen=True)
class Plan:
    """Sizes and trial counts of one sync section."""

    runs: int
    agent_runs: int
    trials: int

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        """--quick: 1,000 no-op runs, 200 runs of the 50 ms agent, 2 trials each."""
        return cls(1000, 200, 2) if quick else cls(5000, 1000, 5)


@dataclass
class System:
    """One system measured: how its worker starts and how its messages are published."""

    name: str
    concurrency: int
    queue: str
    enqueue: Enqueue
    agent: bool = False
    guarded: bool = False
    settle_in_main: bool = False  # AGENTCRON_SYNC_SETTLE=main: the main process records runs
    prefetch: int = 0  # AGENTCRON_SYNC_PREFETCH when set (0: the worker's default)
    claim: str = ""  # AGENTCRON_SYNC_CLAIM (main: the main process guards, children execute)
    rates: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """The worker's command line."""
        return aa._celery("-Q", self.queue, "-P", "prefork", "-c", str(self.concurrency),
                          "-I", "bench.sync_overhead")  # fmt: skip

    def worker_cpu(self) -> float:
        """CPU ms per run of the worker's main process and children together."""
        return sum(self.cpu.get(group, 0.0) for group in WORKER_GROUPS)


def systems() -> list[System]:
    """Every system of the section, in the order they are measured each trial."""
    def guarded(job: str) -> Enqueue:
        return lambda n, t: aa.agentcron_enqueue(job, n, t, sync=True)

    def plain(task: str) -> Enqueue:
        return lambda n, t: aa.celery_enqueue(n, t, task)

    def once(kind: str) -> Enqueue:
        return lambda n, t: so.once_enqueue(kind, n, t)

    def floor(kind: str) -> Enqueue:
        return lambda n, t: so.floor_enqueue(kind, n, t)

    found: list[System] = []
    for c in (2, 4):
        found += [System(f"agentcron guarded no-op, -c {c}", c, "agentcron.sync",
                         guarded("bench_noop"), guarded=True),
                  System(f"plain Celery no-op, -c {c}", c, aa.PLAIN_QUEUE, plain("bench.noop")),
                  System(f"  floor: the guard's round trips, no logic, -c {c}", c,
                         aa.PLAIN_QUEUE, floor("noop"))]  # fmt: skip
        if so.ONCE_TASKS:
            found.append(System(f"Celery + QueueOnce no-op, -c {c}", c, aa.PLAIN_QUEUE,
                                once("noop")))  # fmt: skip
    if so.ONCE_TASKS:
        found.append(System("QueueOnce + idempotency record no-op, -c 2", 2, aa.PLAIN_QUEUE,
                            once("idem")))  # fmt: skip
    found += [System("  floor without the ledger claim (3 round trips), -c 2", 2, aa.PLAIN_QUEUE,
                     floor("noop3")),
              System("  floor, lease acquire and completion only (2 round trips), -c 2", 2,
                     aa.PLAIN_QUEUE, floor("noop2"))]  # fmt: skip
    for c in (2, 4):
        found.append(System(f"  the same, main process guards (CLAIM=main), -c {c}", c,
                            "agentcron.sync", guarded("bench_noop"), guarded=True, claim="main"))
    found.append(System("  the same, CLAIM=main + PREFETCH=8, -c 2", 2, "agentcron.sync",
                        guarded("bench_noop"), guarded=True, claim="main", prefetch=8))
    found.append(System("  the same, main process records (SETTLE=main), -c 2", 2,
                        "agentcron.sync", guarded("bench_noop"), guarded=True,
                        settle_in_main=True))
    for c in (2, 4):
        found.append(System(f"  the same, SETTLE=main + PREFETCH=4 (settling thread), -c {c}", c,
                            "agentcron.sync", guarded("bench_noop"), guarded=True,
                            settle_in_main=True, prefetch=4))  # fmt: skip
    found += [System("agentcron guarded 50 ms agent, -c 2", 2, "agentcron.sync",
                     guarded("bench_agent50"), agent=True, guarded=True),
              System("  the same, main process guards (CLAIM=main), 50 ms, -c 2", 2,
                     "agentcron.sync", guarded("bench_agent50"), agent=True, guarded=True,
                     claim="main"),
              System("  the same, CLAIM=main + PREFETCH=8, 50 ms, -c 2", 2, "agentcron.sync",
                     guarded("bench_agent50"), agent=True, guarded=True, claim="main",
                     prefetch=8),
              System("  the same, main process records (SETTLE=main), 50 ms, -c 2", 2,
                     "agentcron.sync", guarded("bench_agent50"), agent=True, guarded=True,
                     settle_in_main=True),
              System("  the same, SETTLE=main + PREFETCH=2 (settling thread), 50 ms, -c 2", 2,
                     "agentcron.sync", guarded("bench_agent50"), agent=True, guarded=True,
                     settle_in_main=True, prefetch=2),
              System("plain Celery 50 ms agent, -c 2", 2, aa.PLAIN_QUEUE, plain("bench.agent50"),
                     agent=True),
              System("  floor: the guard's round trips, no logic, 50 ms, -c 2", 2,
                     aa.PLAIN_QUEUE, floor("agent50"), agent=True),
              System("  floor without the ledger claim (3 round trips), 50 ms, -c 2", 2,
                     aa.PLAIN_QUEUE, floor("agent50-3"), agent=True)]  # fmt: skip
    if so.ONCE_TASKS:
        found.append(System("Celery + QueueOnce 50 ms agent, -c 2", 2, aa.PLAIN_QUEUE,
                            once("agent50"), agent=True))  # fmt: skip
    return found


def selected(found: list[System], only: str) -> list[System]:
    """The systems whose name holds one of ``only``'s parts, separated by ``;`` (the names hold
    commas); all of them when ``only`` is empty."""
    parts = [part.strip() for part in only.split(";") if part.strip()]
    return [s for s in found if not parts or any(part in s.name for part in parts)]


def run(quick: bool, section: Section) -> None:
    """Fill ``section`` with the sync table, the CPU split and the targets."""
    from agentcron.ledger.store import Ledger

    plan = Plan.for_mode(quick)
    Ledger(aa.POSTGRES_URL).upgrade()
    so.floor_setup()
    schedule = Path(tempfile.mkdtemp(prefix="bench-")) / "beat_schedule.py"
    schedule.write_text(so.SCHEDULE)
    measured = selected(systems(), os.environ.get("AGENTCRON_BENCH_SYNC_ONLY", ""))
    for _ in range(plan.trials):
        for system in measured:
            runs = plan.agent_runs if system.agent else plan.runs
            env = aa.agentcron_env(schedule) if system.guarded else {}
            if system.settle_in_main:
                env["AGENTCRON_SYNC_SETTLE"] = "main"
            if system.claim:
                env["AGENTCRON_SYNC_CLAIM"] = system.claim
            if system.prefetch:
                env["AGENTCRON_SYNC_PREFETCH"] = str(system.prefetch)
            trial: dict[str, float] = {}
            system.rates += aa.measure(system.argv(), env, system.enqueue, runs, 1, cpu=trial)
            for group, ms in trial.items():
                system.cpu[group] = system.cpu.get(group, 0.0) + ms / plan.trials
        print("sync: " + "; ".join(f"{s.name} {s.rates}" for s in measured), flush=True)
    by_name = {s.name: s for s in measured}
    section.lines += _table(measured, by_name, plan)
    if not so.ONCE_TASKS:
        section.lines += ["", "celery-once is not installed (`pip install -e '.[bench]'`): "
                          "its rows and targets are not measured."]  # fmt: skip
    section.targets += _targets(by_name, quick, plan)


def _peer(system: System) -> str:
    """The guarded row a peer is compared with."""
    size = f"-c {system.concurrency}"
    kind = "50 ms agent" if system.agent else "no-op"
    return f"agentcron guarded {kind}, {size}"


def _table(measured: list[System], by_name: dict[str, System], plan: Plan) -> list[str]:
    rows = []
    for system in measured:
        ours = by_name.get(_peer(system))
        stats = Stats.of(system.rates)
        versus = ratio(Stats.of(ours.rates).median, stats.median) if ours else None
        cpu = f"{system.cpu.get('worker main', 0):.2f} / {system.cpu.get('worker children', 0):.2f}"
        others = f"{system.cpu.get('postgres', 0):.2f} / {system.cpu.get('redis', 0):.2f}"
        runs = plan.agent_runs if system.agent else plan.runs
        rows.append([system.name, f"{runs:,}", stats.text(0, "runs/s"), ratio_text(versus), cpu,
                     others])  # fmt: skip
    return table(["system (prefork)", "N", "runs/s: median (min-max, trials)",
                  "agentcron / this", "CPU ms per run: worker main / children",
                  "CPU ms per run: postgres / redis (shared machine)"], rows)  # fmt: skip


def _targets(by_name: dict[str, System], quick: bool, plan: Plan) -> list[Target]:
    note = quick_note(quick, plan.runs, 5000)
    found: list[Target] = []
    rows = {system.name for system in systems()}

    def unmeasured(name: str, goal: str, ours: str, theirs: str) -> Target:
        why = ("rows left out by AGENTCRON_BENCH_SYNC_ONLY" if {ours, theirs} <= rows
               else "peer not installed")  # fmt: skip
        return Target(name, "not measured", goal, False, why)

    def compare(name: str, ours: str, theirs: str, goal: float, what: str) -> None:
        a, b = by_name.get(ours), by_name.get(theirs)
        if a is None or b is None:
            found.append(unmeasured(name, f">= {goal}x {what}", ours, theirs))
            return
        value = ratio(Stats.of(a.rates).median, Stats.of(b.rates).median)
        found.append(Target(name, ratio_text(value), f">= {goal}x {what}",
                            value is not None and value >= goal, note))  # fmt: skip

    def cpu(name: str, ours: str, theirs: str) -> None:
        a, b = by_name.get(ours), by_name.get(theirs)
        goal = "<= 2x plain Celery's worker CPU per run"
        if a is None or b is None:
            found.append(unmeasured(name, goal, ours, theirs))
            return
        value = ratio(a.worker_cpu(), b.worker_cpu())
        found.append(Target(name, ratio_text(value), goal, value is not None and value <= 2.0,
                            note))  # fmt: skip

    for c in (2, 4):
        suffix = "" if c == 2 else "-c4"
        guarded, plain = f"agentcron guarded no-op, -c {c}", f"plain Celery no-op, -c {c}"
        compare(f"sync-vs-queueonce{suffix}", guarded, f"Celery + QueueOnce no-op, -c {c}", 1.0,
                "Celery + QueueOnce")  # fmt: skip
        compare(f"sync-vs-celery{suffix}", guarded, plain, 0.7, "plain Celery")
        cpu(f"sync-cpu-vs-celery{suffix}", guarded, plain)
    note = quick_note(quick, plan.agent_runs, 1000)
    compare("sync-agent50-vs-celery", "agentcron guarded 50 ms agent, -c 2",
            "plain Celery 50 ms agent, -c 2", 0.95, "plain Celery")  # fmt: skip
    compare("sync-agent50-claim-main-vs-celery",  # the opt-in path, not the default
            "  the same, main process guards (CLAIM=main), 50 ms, -c 2",
            "plain Celery 50 ms agent, -c 2", 0.95, "plain Celery")  # fmt: skip
    compare("sync-agent50-claim-main-prefetch8-vs-celery",  # the same, 8 reserved per child
            "  the same, CLAIM=main + PREFETCH=8, 50 ms, -c 2",
            "plain Celery 50 ms agent, -c 2", 0.95, "plain Celery")  # fmt: skip
    return found
