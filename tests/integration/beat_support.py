"""Helpers (no tests) for the beat integration tests: real ``celery beat`` processes and a broker to stop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agentcron.clock import SYSTEM_CLOCK
from tests.services import free_port, missing, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
AGENTS = (
    "def tick(ctx):\n    return 'ok'\n\n"
    "def record(ctx):\n"
    "    with open(ctx.config['out'], 'a') as f:\n"
    "        f.write(ctx.window_key + '\\n')\n"
    "    return 'ok'\n"
)


def write_schedule(folder: Path, jobs: str) -> Path:
    """A schedule file with ``JOBS = [<jobs>]`` and an agent module beside it."""
    (folder / "beatagents.py").write_text(AGENTS)
    path = folder / "beat_schedule.py"
    path.write_text(f"from agentcron import Job\nJOBS = [{jobs}]\n")
    return path


def beat_env(schedule: Path, broker: str, database: str, **extra: str) -> dict[str, str]:
    """The environment of a beat process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCRON_")}
    env.update({
        "AGENTCRON_BROKER_URL": broker, "AGENTCRON_DATABASE_URL": database,
        "AGENTCRON_SCHEDULE_PATH": str(schedule), "AGENTCRON_BEAT_LEADER_TTL": "3",
        "AGENTCRON_SCHEDULE_REFRESH_INTERVAL": "1", "AGENTCRON_BEAT_MAX_LOOP_INTERVAL": "0.5",
        "PYTHONPATH": str(ROOT),
    })  # fmt: skip
    env.update(extra)
    return env


@contextmanager
def celery_process(log: Path, env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery -A workers.app ARGS`` process logging to ``log`` (SIGTERM at the end)."""
    celery = str(Path(sys.executable).with_name("celery"))
    with log.open("wb") as out:
        proc = subprocess.Popen([celery, "-A", "workers.app", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            yield proc
        finally:
            stop(proc)


@contextmanager
def beat_process(tmp: Path, env: dict[str, str], name: str = "beat") -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery -A workers.app beat`` process (stopped with SIGTERM at the end)."""
    with celery_process(tmp / f"{name}.log", env, "beat", "-s", str(tmp / f"{name}-schedule"),
                        "--loglevel", "INFO") as proc:  # fmt: skip
        yield proc


@contextmanager
def worker_process(tmp: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A real sync ``celery worker`` (solo pool) on ``agentcron.sync``."""
    with celery_process(tmp / "worker.log", env, "worker", "-Q", "agentcron.sync", "-P", "solo",
                        "-n", f"beat-e2e-{tmp.name}@%h", "--loglevel", "INFO",
                        "--without-gossip", "--without-mingle") as proc:  # fmt: skip
        yield proc


def queued_keys(client: Any, queue: str = "agentcron.sync") -> list[str]:
    """The window keys of the messages on a broker queue (Celery protocol 2 bodies)."""
    import base64

    keys = []
    for raw in client.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        keys.append(body[1]["window_key"])
    return keys


def rows(engine: sa.Engine, job: str | None = None) -> list[dict[str, Any]]:
    """The ledger's run rows (window key, state, trigger, reason)."""
    query = "select window_key, state, trigger, error_message, slot from runs"
    params: dict[str, Any] = {}
    if job is not None:
        query += " where job = :job"
        params["job"] = job
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(query + " order by slot"), params)]


def wait_until(when: datetime, what: str) -> None:
    """Let real time pass until ``when`` (real beat processes run on the real clock)."""
    wait_for(lambda: SYSTEM_CLOCK.now() >= when, timeout=60, interval=0.05, what=what)


class RedisBroker:
    """A private redis-server on a fixed free port that can be stopped and started again."""

    def __init__(self, tmp: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            missing("redis-server binary")
        self.tmp = tmp
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [self.binary or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        wait_for(lambda: _pings(client), what=f"redis-server on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def reset_ledger(url: str) -> sa.Engine:
    """Migrate the ledger and empty its tables."""
    from agentcron.ledger.store import Ledger

    ledger = Ledger(url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("delete from runs"))
        conn.execute(sa.text("delete from schedules"))
        conn.execute(sa.text("delete from leases"))
    return ledger.engine


def now_plus(seconds: float) -> datetime:
    """Real time ``seconds`` from now."""
    return SYSTEM_CLOCK.now() + timedelta(seconds=seconds)
