"""Beat emission: N every-minute schedules due at one boundary, agentcron vs the anchors in ONE run.

    .venv/bin/python -m bench.beat_emission [--sizes 10000,100000] [--anchors 10000] [--timeout 120]

For each scheduler a real ``celery beat`` process starts with N schedules (``* * * * *``); once
it is ready, we wait for the next minute boundary B (at least 5 s away), empty the queue just
before B, and poll ``LLEN`` every 5 ms. Reported: the time from B to the first message and to
all N messages on the broker (or how many were there when ``--timeout`` ran out).

- agentcron: ``celery -A workers.app beat`` (workers.beat:AgentcronScheduler), PostgreSQL
  ledger (every window recorded ``scheduled`` before it is published), leader lease in Redis.
- Celery beat with its default ``PersistentScheduler`` (N ``crontab()`` entries).
- RedBeat (``redbeat.RedBeatScheduler``, celery-redbeat from the ``bench`` extra).

The broker is a private ``redis-server`` on a free port (nothing else's data is touched); the
ledger is the PostgreSQL database ``AGENTCRON_BENCH_POSTGRES_URL`` (default ``bench_beat``,
emptied before each agentcron run). ``--profile`` runs agentcron's beat under cProfile and
prints the top functions of the emission.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]
CELERY = str(Path(sys.executable).with_name("celery"))
POSTGRES_URL = os.environ.get("AGENTCRON_BENCH_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/bench_beat")  # fmt: skip

AGENTCRON_FILE = """from agentcron import Job
JOBS = [Job(f"j{i}", agent="benchagents:noop", schedule="* * * * *") for i in range(%d)]
"""
EMPTY_FILE = "JOBS = []\n"
CELERY_APP = """from celery import Celery
from celery.schedules import crontab
app = Celery("bench", broker=%(broker)r)
app.conf.update(task_serializer="json", accept_content=["json"], timezone="UTC",
                enable_utc=True, redbeat_redis_url=%(broker)r, beat_max_loop_interval=1,
                redbeat_lock_timeout=300)
app.conf.beat_schedule = {f"j{i}": {"task": "bench.noop", "schedule": crontab()}
                          for i in range(%(n)d)}
"""


@dataclass
class Result:
    """One scheduler at one N."""

    name: str
    n: int
    ready_s: float
    first_s: float | None
    all_s: float | None
    queued: int


class Broker:
    """A private redis-server."""

    def __init__(self, tmp: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def reset_ledger() -> None:
    """Migrate and empty the bench ledger."""
    from agentcron.ledger.store import Ledger

    ledger = Ledger(POSTGRES_URL)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        for table in ("runs", "schedules", "leases"):
            conn.execute(sqlalchemy.text(f"delete from {table}"))
    ledger.close()


def fill_schedules(n: int) -> float:
    """Put ``n`` runtime (``source='api'``) every-minute jobs into the ``schedules`` table, as the
    API would leave them, with one COPY; returns the seconds it took (not part of start-up)."""
    import json

    import psycopg

    from agentcron import Job
    from agentcron.ledger.schedules import stored_definition

    definition = json.dumps(stored_definition(Job("j0", agent="benchagents:noop",
                                                  schedule="* * * * *"), "api"), default=str)
    began = time.perf_counter()
    with psycopg.connect(POSTGRES_URL.replace("+psycopg", "")) as conn:
        with conn.cursor() as cur, cur.copy(
            "COPY schedules (name, definition, enabled, source, revision, updated_at) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row((f"j{i}", definition, True, "api", 1, "2026-01-01T00:00:00Z"))
        conn.commit()
    return time.perf_counter() - began


def start(name: str, n: int, tmp: Path, broker: Broker, profile: bool,
          source: str = "file") -> subprocess.Popen[bytes]:  # fmt: skip
    """Start one beat process for ``name`` with ``n`` schedules: agentcron's from the schedule
    file (``source='file'``) or from the ``schedules`` table with an empty file (``'table'``)."""
    folder = tmp / f"{name}-{n}"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCRON_")}
    env["PYTHONPATH"] = f"{folder}{os.pathsep}{ROOT}"
    log = open(folder / "beat.log", "wb")  # noqa: SIM115 - lives as long as the process
    if name == "agentcron":
        (folder / "benchagents.py").write_text("def noop(ctx):\n    return None\n")
        reset_ledger()
        if source == "table":
            (folder / "beat_schedule.py").write_text(EMPTY_FILE)
            fill_schedules(n)
            env["AGENTCRON_AGENT_MODULES"] = "benchagents"
        else:
            (folder / "beat_schedule.py").write_text(AGENTCRON_FILE % n)
        env.update(AGENTCRON_BROKER_URL=broker.url, AGENTCRON_DATABASE_URL=POSTGRES_URL,
                   AGENTCRON_SCHEDULE_PATH=str(folder / "beat_schedule.py"))  # fmt: skip
        command = [CELERY, "-A", "workers.app", "beat", "-s", str(folder / "s"), "-l", "INFO"]
        if profile:
            command = [sys.executable, "-m", "cProfile", "-o", str(tmp / "beat.prof"),
                       CELERY, *command[1:]]  # fmt: skip
    else:
        (folder / "bench_app.py").write_text(CELERY_APP % {"broker": broker.url, "n": n})
        command = [CELERY, "-A", "bench_app", "beat", "-s", str(folder / "s"), "-l", "INFO"]
        if name == "redbeat":
            command += ["-S", "redbeat.RedBeatScheduler"]
    launched = time.time()
    proc = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    LAUNCHED[proc.pid] = launched
    return proc


LAUNCHED: dict[int, float] = {}
"""When each process was launched: start-up is timed from there, not from before the ledger
was emptied and filled (it was until commit ba6f0fb, which added the DELETE of the previous
runs' rows, and for the table source the COPY of its 100,000 rows, to the start-up)."""


def ready(name: str, n: int, tmp: Path) -> bool:
    """Whether the beat finished starting (its schedule is loaded)."""
    text = (tmp / f"{name}-{n}" / "beat.log").read_text(errors="replace")
    if name == "agentcron":
        return "beat active" in text
    return "beat: Starting..." in text


def measure(name: str, n: int, tmp: Path, broker: Broker, timeout: float,
            profile: bool = False) -> Result:  # fmt: skip
    """Run one scheduler and time its first boundary."""
    broker.client.flushdb()
    began = time.time()
    proc = start(name, n, tmp, broker, profile)
    began = LAUNCHED.get(proc.pid, began)
    queue = "agentcron.sync" if name == "agentcron" else "celery"
    try:
        while not ready(name, n, tmp):
            if proc.poll() is not None or time.time() - began > 600:
                raise RuntimeError(f"{name} did not start; see {tmp}/{name}-{n}/beat.log")
            time.sleep(0.2)
        if name == "redbeat":  # RedBeat loads its entries into Redis after "Starting..."
            time.sleep(5)
        ready_s = time.time() - began
        boundary = (int(time.time() + 5) // 60 + 1) * 60
        while time.time() < boundary - 0.5:
            time.sleep(0.05)
        broker.client.delete(queue)
        first = done = None
        count = 0
        while time.time() < boundary + timeout:
            count = int(broker.client.llen(queue))
            now = time.time()
            if count and first is None and now >= boundary:
                first = now - boundary
            if count >= n and now >= boundary:
                done = now - boundary
                break
            time.sleep(0.005)
        return Result(name, n, ready_s, first, done, count)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def show(results: list[Result]) -> None:
    """Print a markdown table."""
    print("| scheduler | N | start-up (s) | first message after the boundary (s) "
          "| all N on the broker (s) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for r in results:
        first = f"{r.first_s:.2f}" if r.first_s is not None else "—"
        done = f"**{r.all_s:.2f}**" if r.all_s is not None else f"not done ({r.queued:,} queued)"
        print(f"| {r.name} | {r.n:,} | {r.ready_s:.1f} | {first} | {done} |")


def main() -> None:
    """Run the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="agentcron sizes")
    parser.add_argument("--anchors", default="10000", help="sizes for PersistentScheduler/RedBeat")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--profile", action="store_true", help="cProfile agentcron's beat")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    anchors = [int(s) for s in args.anchors.split(",") if s]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="beat-bench-") as folder:
        tmp = Path(folder)
        broker = Broker(tmp)
        try:
            for n in sizes:
                results.append(measure("agentcron", n, tmp, broker, args.timeout, args.profile))
                show(results[-1:])
                if args.profile:
                    import pstats

                    pstats.Stats(str(tmp / "beat.prof")).sort_stats("cumtime").print_stats(25)
            for n in anchors:
                for name in ("celery-persistent", "redbeat"):
                    results.append(measure(name, n, tmp, broker, args.timeout))
                    show(results[-1:])
        finally:
            broker.close()
    print()
    show(results)


if __name__ == "__main__":
    main()
