"""``agentcron status``: beat leader, workers per queue, queue depths, per job last success / next
fire / missed windows. Exits 1 when no beat is alive or leads, or a queue that jobs use has no live
worker, so it serves as a health check (docker-compose ``healthcheck``, Kubernetes probes, cron).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import click

from agentcron import keys
from agentcron.cli.timing import load_runtime
from agentcron.instants import format_instant
from agentcron.ledger.records import RunState
from agentcron.timeouts import cli_app
from agentcron.watch.heartbeats import BEAT, WORKER, Heartbeat, open_heartbeats

if TYPE_CHECKING:
    from agentcron.runtime import Runtime


@dataclass
class JobStatus:
    """One job's line."""

    job: str
    queue: str
    last_success: str | None
    next_fire: str | None
    missed: int


@dataclass
class StatusReport:
    """Everything ``agentcron status`` shows."""

    leader: str | None
    beats: list[str]
    workers: dict[str, list[str]]
    depths: dict[str, int]
    jobs: list[JobStatus] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Why the system is unhealthy (empty when healthy)."""
        if not self.beats:
            out = ["no beat is alive (no heartbeat)"]
        else:  # alive but not leading (an election, or the lease store is down): nothing is emitted
            out = [] if self.leader else ["no beat leads (none holds the leader lease)"]
        for queue in sorted({j.queue for j in self.jobs}):
            if not self.workers.get(queue):
                out.append(f"no worker consumes {queue}")
        return out


def collect(runtime: Runtime, heartbeats: list[Heartbeat], depths: dict[str, int]) -> StatusReport:
    """Build the report from the runtime (ledger, leases, jobs) and the live heartbeats."""
    from agentcron.beat.leader import leader_leases
    from agentcron.watch.watchdog import enabled_specs

    try:
        holder = leader_leases(runtime.ledger.engine, runtime.clock).holder(keys.BEAT_LEADER)
    except Exception:
        holder = None
    beats = [h.ident for h in heartbeats if h.role == BEAT]
    leader = holder.owner if holder is not None else next(
        (h.ident for h in heartbeats if h.role == BEAT and h.leader), None)
    workers: dict[str, list[str]] = {}
    for beat in heartbeats:
        if beat.role == WORKER:
            for queue in beat.queues:
                workers.setdefault(queue, []).append(beat.ident)
    report = StatusReport(leader, beats, workers, depths)
    now = runtime.clock.now()
    for spec in sorted(enabled_specs(runtime), key=lambda s: s.name):
        last = runtime.ledger.list_runs(job=spec.name, state=str(RunState.SUCCEEDED), limit=1)
        upcoming = spec.schedule.next_fire(now)
        missed = runtime.ledger.count_by_state(spec.name).get(str(RunState.MISSED), 0)
        report.jobs.append(JobStatus(spec.name, spec.queue,
                                     format_instant(last[0].slot) if last else None,
                                     format_instant(upcoming) if upcoming else None, missed))
    return report


def render(report: StatusReport) -> str:
    """The human-readable status."""
    lines = [f"beat leader: {report.leader or '-'}  (beats alive: {len(report.beats)})"]
    queues = sorted(set(report.workers) | set(report.depths) | {j.queue for j in report.jobs})
    for queue in queues:
        names = report.workers.get(queue, [])
        lines.append(f"queue {queue}: {len(names)} worker(s), depth "
                     f"{report.depths.get(queue, '?')}  {' '.join(names)}".rstrip())
    lines.append(f"{'job':<32} {'last success':<22} {'next fire':<22} missed")
    for j in report.jobs:
        lines.append(f"{j.job:<32} {j.last_success or '-':<22} {j.next_fire or '-':<22} {j.missed}")
    problems = report.problems()
    lines.append("status: OK" if not problems else "status: DOWN: " + "; ".join(problems))
    return "\n".join(lines)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(as_json: bool) -> None:
    """Show beat, workers, queues and jobs; exit 1 when beat or a queue's workers are down."""
    from agentcron.jobs import ASYNC_QUEUE, SYNC_QUEUE
    from agentcron.watch.queued import queue_depths

    runtime = load_runtime()
    try:
        queues = sorted({SYNC_QUEUE, ASYNC_QUEUE, *(s.queue for s in runtime.specs())})
        app = cli_app(runtime.settings, "agentcron-status")
        depths = queue_depths(app, queues)  # a broker that is down: one line, exit 1
        beats = open_heartbeats(runtime.settings, runtime.clock).alive()
        report = collect(runtime, beats, depths)
    finally:
        runtime.close()
    if as_json:
        data = asdict(report) | {"problems": report.problems()}
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render(report))
    if report.problems():
        raise SystemExit(1)
