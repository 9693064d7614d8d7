"""``agentcron status`` against real beat and worker processes, and ``celery -A workers.app agents``
commands as real subprocesses (Redis broker, SQLite ledger per test)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcron.emission.envelope import emission_for
from agentcron.instants import parse_instant
from agentcron.ledger.records import RunState
from agentcron.ledger.schedules import ScheduleStore
from agentcron.ledger.store import Ledger
from agentcron.schedule_file import load_jobs, load_schedule_file
from tests.services import REDIS_URL, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JOB = "watch_cli_job"


@pytest.fixture
def env(tmp_path: Path, redis_client: Any) -> dict[str, str]:
    (tmp_path / "watch_agents.py").write_text("def agent(ctx):\n    return 'ok'\n")
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(f"""
        from agentcron import Job
        JOBS = [Job("{JOB}", agent="watch_agents:agent", schedule="0 6 * * *")]
    """))
    values = dict(os.environ)
    values.update({
        "AGENTCRON_BROKER_URL": os.environ.get("AGENTCRON_TEST_REDIS_URL", REDIS_URL),
        "AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        "AGENTCRON_SCHEDULE_PATH": str(tmp_path / "beat_schedule.py"),
        "AGENTCRON_DATA_DIR": str(tmp_path / "data"),
        "AGENTCRON_HEARTBEAT_INTERVAL": "0.5",
        "AGENTCRON_HEARTBEAT_TTL": "3",
        "PYTHONPATH": str(ROOT),
    })  # fmt: skip
    return values


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def agents(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = run(env, str(BIN / "celery"), "-A", "workers.app", "agents", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture
def ledger(env: dict[str, str]) -> Iterator[Ledger]:
    store = Ledger(env["AGENTCRON_DATABASE_URL"])
    yield store
    store.close()


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([str(BIN / "celery"), "-A", "workers.app", *args], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def status(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = run(env, str(BIN / "agentcron"), "status", "--json")
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        return done.returncode, {"error": done.stderr[-500:]}


def test_status_is_healthy_with_beat_and_worker_and_fails_with_beat_stopped(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = env | {"AGENTCRON_WATCHDOG_INTERVAL": "1"}
    worker = start(env, tmp_path / "worker.log", "worker", "-Q", "agentcron.sync", "-c", "1",
                   "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-n", "watchw@%h", "-l", "INFO")  # fmt: skip
    beat = start(env, tmp_path / "beat.log", "beat", "-l", "INFO",
                 "--schedule", str(tmp_path / "celerybeat-schedule"))  # fmt: skip
    try:
        seen: dict[str, Any] = {}

        def healthy() -> bool:
            code, seen["report"] = status(env)
            return code == 0

        wait_for(healthy, timeout=60, interval=0.5, what="status OK with beat and worker up")
        report = seen["report"]
        assert report["leader"] and report["beats"]
        assert any("watchw@" in w for w in report["workers"]["agentcron.sync"])
        assert [j["job"] for j in report["jobs"]] == [JOB]
        assert report["jobs"][0]["next_fire"].endswith("T06:00:00Z")
        log = tmp_path / "worker.log"  # the leading beat sends the watchdog task; a worker runs it
        ran = re.compile(r"Task agentcron\.watchdog\[[^]]+\] succeeded .*: '1 job\(s\): ")
        wait_for(lambda: ran.search(log.read_text()), timeout=30, interval=0.5,
                 what="the watchdog task to run")

        stop(beat, signal.SIGKILL)  # no clean exit: the heartbeat must expire by its TTL

        def down() -> bool:
            code, seen["report"] = status(env)
            return code == 1

        wait_for(down, timeout=30, interval=0.5, what="status to fail with beat stopped")
        assert "no beat is alive (no heartbeat)" in seen["report"]["problems"]
        assert seen["report"]["workers"]["agentcron.sync"]  # the worker is still there
    finally:
        stop(beat)
        stop(worker)


def test_celery_agents_commands(env: dict[str, str], ledger: Ledger, redis_client: Any) -> None:
    path = Path(env["AGENTCRON_SCHEDULE_PATH"])
    ScheduleStore(ledger.engine).sync_file(load_schedule_file(path))  # what a beat does at start

    listed = agents(env, "list", "--json")
    assert [(j["job"], j["state"]) for j in json.loads(listed.stdout)] == [(JOB, "active")]
    agents(env, "pause", JOB)
    assert json.loads(agents(env, "list", "--json").stdout)[0]["state"] == "paused"
    agents(env, "resume", JOB)
    assert json.loads(agents(env, "list", "--json").stdout)[0]["state"] == "active"

    nxt = agents(env, "next", "0 6 * * *", "--after", "2026-03-17T00:00:00Z", "-n", "1", "--json")
    assert json.loads(nxt.stdout) == ["2026-03-17T06:00:00Z"]

    assert "sent" in agents(env, "trigger", JOB).stdout
    assert redis_client.llen("agentcron.sync") == 1
    runs = json.loads(agents(env, "runs", "--job", JOB, "--json").stdout)
    assert [r["trigger"] for r in runs] == ["manual"]

    spec = load_jobs(path)[0]
    done_slot = parse_instant("2026-03-14T06:00:00Z")
    ledger.mark_terminal(emission_for(spec, done_slot).window, RunState.SUCCEEDED, "")
    back = agents(env, "backfill", JOB, "--from", "2026-03-14T00:00:00Z",
                  "--to", "2026-03-16T23:00:00Z")  # fmt: skip
    assert "skipped 1 already succeeded" in back.stdout
    assert "sent 2 window(s)" in back.stdout
    assert redis_client.llen("agentcron.sync") == 3
    states = {r.window_key: r.state for r in ledger.list_runs(job=JOB)}
    assert states[f"{JOB}@2026-03-14T06:00:00Z"] is RunState.SUCCEEDED
    assert states[f"{JOB}@2026-03-15T06:00:00Z"] is RunState.SCHEDULED

    check = agents(env, "check")
    assert check.stdout.startswith("1 job(s):")
