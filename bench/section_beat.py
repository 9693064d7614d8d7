"""``python -m bench beat``: agentcron's beat, its floor and RedBeat/Celery beat in one run.

Each agentcron beat process is timed at its start-up (until "beat active") and at several
consecutive minute boundaries (the queue is emptied just before each), and its peak RSS is read
before it stops; the floor (``bench.floor``) runs between them; the anchors are real ``celery
beat`` processes as in ``bench.beat_emission``, which this reuses.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import beat_emission, floor
from bench.harness import Section, Stats, Target, quick_note, ratio, ratio_text, table

TARGET_N = 100_000


@dataclass(frozen=True)
class Plan:
    """Sizes and trial counts of one beat section."""

    n: int
    processes: int
    boundaries: int
    floor_trials: int
    anchor_n: int
    anchors: tuple[str, ...]
    timeout: float

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        """--quick: 10,000 jobs, one process, two boundaries, RedBeat only."""
        if quick:
            return cls(10_000, 1, 2, 3, 10_000, ("redbeat",), 60.0)
        return cls(TARGET_N, 2, 2, 5, 10_000, ("redbeat", "celery-persistent"), 120.0)


@dataclass
class Scheduler:
    """What one scheduler at one N gave over its processes and boundaries."""

    name: str
    n: int
    source: str = "file"  # agentcron: its jobs from the schedule file or the schedules table
    startup: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)


def _boundary(broker: beat_emission.Broker, queue: str, n: int, timeout: float,
              ) -> tuple[float | None, float | None, int]:  # fmt: skip
    """(first, all, queued) for the next boundary at least 5 s away."""
    boundary = (int(time.time() + 5) // 60 + 1) * 60
    while time.time() < boundary - 0.5:
        time.sleep(0.05)
    broker.client.delete(queue)
    first = None
    count = 0
    while time.time() < boundary + timeout:
        count = int(broker.client.llen(queue))
        now = time.time()
        if count and first is None and now >= boundary:
            first = now - boundary
        if count >= n and now >= boundary:
            return first, now - boundary, count
        time.sleep(0.005)
    return first, None, count


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def run_scheduler(result: Scheduler, tmp: Path, broker: beat_emission.Broker, boundaries: int,
                  timeout: float, startup_limit: float = 600.0) -> None:  # fmt: skip
    """Start one beat process, time its start-up and ``boundaries`` boundaries, then stop it."""
    name, n = result.name, result.n
    folder = tmp / f"{name}-{n}"
    if folder.exists():
        folder.rename(tmp / f"{name}-{n}-{time.monotonic_ns()}")
    broker.client.flushdb()
    began = time.time()
    proc = beat_emission.start(name, n, tmp, broker, profile=False, source=result.source)
    began = beat_emission.LAUNCHED.get(proc.pid, began)  # the ledger's reset is not start-up
    queue = "agentcron.sync" if name == "agentcron" else "celery"
    try:
        while not beat_emission.ready(name, n, tmp):
            if proc.poll() is not None or time.time() - began > startup_limit:
                raise RuntimeError(f"{name} did not start; see {folder}/beat.log")
            time.sleep(0.2)
        result.startup.append(time.time() - began)
        if name == "redbeat":  # RedBeat loads its entries into Redis after "Starting..."
            time.sleep(5)
        for _ in range(boundaries):
            first, done, count = _boundary(broker, queue, n, timeout)
            if first is not None:
                result.first.append(first)
            if done is None:
                result.missed.append(count)
            else:
                result.done.append(done)
        result.rss_mb.append(_peak_rss_mb(proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except Exception:
            proc.kill()


def _row(r: Scheduler, floor_median: float | None) -> list[str]:
    done = Stats.of(r.done).text(2) if r.done else "—"
    if r.missed:
        done += f"; not done after the timeout {len(r.missed)}x ({max(r.missed):,} queued)"
    vs_floor = ratio_text(ratio(Stats.of(r.done).median, floor_median)) if (
        r.done and floor_median) else "—"  # fmt: skip
    label = r.name + (" (jobs from the `schedules` table)" if r.source == "table" else "")
    return [label, f"{r.n:,}", Stats.of(r.startup).text(1) if r.startup else "—",
            Stats.of(r.first).text(2) if r.first else "—", done, vs_floor,
            Stats.of(r.rss_mb).text(0) if r.rss_mb else "—"]  # fmt: skip


def run(quick: bool, section: Section) -> None:
    """Fill ``section`` with the beat table and its three targets."""
    plan = Plan.for_mode(quick)
    ours = Scheduler("agentcron", plan.n)
    table_run = Scheduler("agentcron", plan.n, source="table")
    anchors = [Scheduler(name, plan.anchor_n) for name in plan.anchors]
    floors: list[floor.FloorTrial] = []
    with tempfile.TemporaryDirectory(prefix="bench-beat-") as folder:
        tmp = Path(folder)
        broker = beat_emission.Broker(tmp)
        try:
            beat_emission.reset_ledger()
            for trial in range(plan.floor_trials):
                floors.append(floor.measure(plan.n, trial, beat_emission.POSTGRES_URL,
                                            broker.client))  # fmt: skip
                print(f"floor {plan.n:,}: {floors[-1].total_s:.2f} s", flush=True)
                if trial < plan.processes:
                    run_scheduler(ours, tmp, broker, plan.boundaries, plan.timeout)
                    print(f"agentcron {plan.n:,}: start-up {ours.startup}, done {ours.done}",
                          flush=True)  # fmt: skip
            run_scheduler(table_run, tmp, broker, 1, plan.timeout)
            print(f"agentcron {plan.n:,} from the schedules table: start-up {table_run.startup},"
                  f" done {table_run.done}", flush=True)  # fmt: skip
            for anchor in anchors:
                run_scheduler(anchor, tmp, broker, 1, plan.timeout)
                print(f"{anchor.name} {anchor.n:,}: done {anchor.done} missed {anchor.missed}",
                      flush=True)  # fmt: skip
        finally:
            broker.close()
            # its 100,000 schedule rows would otherwise be loaded by the next section's workers
            # (the async section's RSS reading rose from ~280 to ~480 MB after a beat section)
            beat_emission.reset_ledger()
    report(plan, quick, ours, anchors, floors, section, table_run)


def report(plan: Plan, quick: bool, ours: Scheduler, anchors: list[Scheduler],
           floors: list[floor.FloorTrial], section: Section,
           table_run: Scheduler | None = None) -> None:  # fmt: skip
    """The table and the targets of one beat section."""
    total = Stats.of([f.total_s for f in floors])
    insert = Stats.of([f.insert_s for f in floors])
    pushes = Stats.of([f.push_s for f in floors])
    rows = [["floor: COPY into `runs` + pipelined LPUSH", f"{plan.n:,}", "—", "—", total.text(2),
             "1.00x", "—"]]  # fmt: skip
    extra = [table_run] if table_run is not None and table_run.startup else []
    rows += [_row(r, total.median if r.n == plan.n else None) for r in (ours, *extra, *anchors)]
    section.lines += table(["scheduler", "N", "start-up (s)", "first message after the boundary (s)",
                            "all N on the broker (s)", "x floor", "beat peak RSS (MB)"], rows)  # fmt: skip
    section.lines += ["", f"Floor split: COPY {insert.text(2, 's')}; LPUSH {pushes.text(2, 's')}."]
    for anchor in anchors:
        if anchor.done and ours.done and anchor.n == ours.n:
            r = ratio(Stats.of(ours.done).median, Stats.of(anchor.done).median)
            section.lines.append(f"agentcron / {anchor.name} (time to all on the broker): "
                                 f"{ratio_text(r)}")  # fmt: skip
    note = quick_note(quick, plan.n, TARGET_N)
    if ours.done and not ours.missed:
        done = Stats.of(ours.done)
        section.targets.append(Target("beat-on-broker", f"{done.text(2, 's')}", "<= 3 s",
                                      done.median <= 3.0, note))  # fmt: skip
        r = ratio(done.median, total.median)
        section.targets.append(Target("beat-vs-floor", ratio_text(r) + f" of {total.median:.2f} s",
                                      "<= 1.5x floor", r is not None and r <= 1.5, note))  # fmt: skip
    else:
        for name, goal in (("beat-on-broker", "<= 3 s"), ("beat-vs-floor", "<= 1.5x floor")):
            section.targets.append(Target(name, f"not all on the broker within {plan.timeout:.0f} s",
                                          goal, False, note))  # fmt: skip
    startup = Stats.of(ours.startup)
    section.targets.append(Target("beat-startup", startup.text(1, "s") + " (schedule file)",
                                  "<= 10 s", startup.median <= 10.0, note))  # fmt: skip
    if table_run is None or not table_run.startup:
        section.targets.append(Target("beat-startup-table", "not measured", "<= 10 s", False, note))
    else:
        from_table = Stats.of(table_run.startup)
        section.targets.append(Target("beat-startup-table", from_table.text(1, "s") +
                                      " (schedules table)", "<= 10 s", from_table.median <= 10.0,
                                      note))  # fmt: skip
