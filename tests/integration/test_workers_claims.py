"""Prefork children as pure executors: the worker's main process guards the sync runs
(``AGENTCRON_SYNC_CLAIM=main``, :mod:`workers.claims`).

A real ``celery worker -c 2`` on Redis and PostgreSQL. Every run ends once with its callback
once, its lease released and its message acknowledged; the main process recorded every run (its
statistics at shutdown) and the children none. What an agent's context gathers in the child
(reports, usage, ``ctx.log`` lines) is recorded with the run; a failed attempt is retried within
the window, a child killed mid-attempt fails only that attempt, a job's timeout stops the agent
in the child, and a cancellation reaches the agent in the child.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import SYNC_TASK, RunMessage
from agentcron.windows import window_key
from tests.integration.workers_support import celery_worker, use_broker, wait_ready, worker_env
from tests.services import wait_for
from workers.app import app

pytestmark = pytest.mark.integration

AGENTS = '''
import os
import time
import redis

def store():
    return redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"])

def agent(ctx):
    store().rpush("claims-effects:" + ctx.window_key, ctx.attempt)
    return {"ok": ctx.window_key, "pid": os.getpid()}

def called_back(report):
    store().rpush("claims-callback:" + report.window_key, report.state)

def flaky(ctx):
    store().rpush("claims-effects:" + ctx.window_key, ctx.attempt)
    ctx.log.info("attempt %d in a child", ctx.attempt)
    ctx.usage("gpt-test", input_tokens=10, output_tokens=5, cost_usd=0.25)
    if ctx.attempt == 1:
        raise ValueError("first attempt fails")
    if ctx.attempt == 2:
        os._exit(3)  # the child dies mid-attempt
    ctx.report("Summary", "all *good*")
    return "third time"

def slow(ctx):
    store().rpush("claims-effects:" + ctx.window_key, ctx.attempt)
    time.sleep(30)

def doomed(ctx):
    store().rpush("claims-effects:" + ctx.window_key, ctx.attempt)
    os._exit(3)  # every attempt's child dies

def sleepy(ctx):
    store().rpush("claims-started:" + ctx.window_key, os.getpid())
    time.sleep(30)
    store().rpush("claims-effects:" + ctx.window_key, ctx.attempt)

def stubborn(ctx):
    store().rpush("claims-started:" + ctx.window_key, os.getpid())
    try:
        time.sleep(30)
    except BaseException:  # swallows the SystemExit of the child's SIGTERM
        time.sleep(30)
    store().rpush("claims-effects:" + ctx.window_key, ctx.attempt)

def patient(ctx):
    store().rpush("claims-started:" + ctx.window_key, os.getpid())
    deadline = time.monotonic() + 30
    while not ctx.cancel_requested and time.monotonic() < deadline:
        time.sleep(0.05)
    store().rpush("claims-cancelled:" + ctx.window_key, str(ctx.cancel_requested))
    return "stopped"
'''

SCHEDULE = '''
from agentcron import Job

JOBS = [
    Job("claimed_job", agent="claims_agents:agent", schedule="@yearly", overlap="allow",
        on_success="claims_agents:called_back"),
    Job("claimed_flaky", agent="claims_agents:flaky", schedule="@yearly", max_retries=3,
        backoff_base=0.1, backoff_cap=0.2),
    Job("claimed_slow", agent="claims_agents:slow", schedule="@yearly", timeout=1),
    Job("claimed_stubborn", agent="claims_agents:stubborn", schedule="@yearly"),
    Job("claimed_patient", agent="claims_agents:patient", schedule="@yearly", lease_ttl=3),
    Job("claimed_doomed", agent="claims_agents:doomed", schedule="@yearly", max_retries=2,
        backoff_base=0.1, backoff_cap=0.2),
    Job("claimed_sleepy", agent="claims_agents:sleepy", schedule="@yearly"),
]
'''
START = datetime(2026, 2, 1, tzinfo=UTC)
RUNS = 20


def message(job: str, n: int) -> RunMessage:
    start = START + timedelta(hours=n)
    return RunMessage(job, window_key(job, start), start, start, trigger="manual")


@pytest.fixture
def ledger(postgres_url: str) -> Iterator[Ledger]:
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs WHERE job LIKE 'claimed_%'"))
        for table in ("reports", "run_usage", "run_logs"):  # of an earlier run of these tests
            conn.execute(sqlalchemy.text(f"DELETE FROM {table} WHERE window_key LIKE 'claimed_%'"))
    yield ledger
    ledger.close()


def claims_env(tmp_path: Path, redis_url: str, postgres_url: str) -> dict[str, str]:
    (tmp_path / "claims_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    use_broker(redis_url)
    return worker_env(AGENTCRON_DATABASE_URL=postgres_url,
                      AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                      AGENTCRON_DATA_DIR=str(tmp_path / "data"),
                      AGENTCRON_SYNC_CLAIM="main")  # fmt: skip


@pytest.fixture
def worker(tmp_path: Path, redis_url: str, postgres_url: str) -> Iterator[Path]:
    env = claims_env(tmp_path, redis_url, postgres_url)
    log = tmp_path / "sync.log"
    with celery_worker("-Q", "agentcron.sync", "-c", "2", "-n", "claims@e2e", env=env,
                       log=log) as proc:  # fmt: skip
        wait_ready("claims@e2e")
        yield log
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    text = log.read_text()  # the main process guarded every run; no child guarded one
    main = re.findall(r"MainProcess\] run statistics: runs=(\d+)", text)
    children = re.findall(r"(?:Fork|Spawn)PoolWorker-\d+\] run statistics: runs=(\d+)", text)
    assert len(main) == 1 and int(main[0]) >= 1, text[-3000:]
    assert children and all(runs == "0" for runs in children), text[-3000:]


def send(ledger: Ledger, msgs: list[RunMessage]) -> None:
    ledger.record_scheduled([NewWindow(m.job, m.window_start, m.window_key, m.slot, m.trigger)
                             for m in msgs])  # fmt: skip
    for msg in msgs:
        app.send_task(SYNC_TASK, kwargs=msg.to_kwargs(), queue="agentcron.sync")


def _state(ledger: Ledger, msg: RunMessage) -> RunState | None:
    record = ledger.get(msg.job, msg.window_start)
    return record.state if record else None


def test_the_main_process_guards_and_children_run_every_agent(
    worker: Path, redis_client: Any, ledger: Ledger
) -> None:
    msgs = [message("claimed_job", n) for n in range(RUNS)]
    send(ledger, msgs)
    for msg in msgs:
        wait_for(lambda m=msg: _state(ledger, m) is RunState.SUCCEEDED, timeout=30,
                 what=f"{msg.window_key} succeeded")  # fmt: skip
    wait_for(lambda: not redis_client.hlen("unacked"), timeout=10, what="all acked")
    wait_for(lambda: all(redis_client.llen(f"claims-callback:{m.window_key}") for m in msgs),
             timeout=10, what="every callback")  # fmt: skip
    pids = set()
    for msg in msgs:
        assert redis_client.lrange(f"claims-effects:{msg.window_key}", 0, -1) == [b"1"]
        assert redis_client.lrange(f"claims-callback:{msg.window_key}", 0, -1) == [b"succeeded"]
        assert not redis_client.exists(f"agentcron:lease:{msg.window_key}")
        record = ledger.get(msg.job, msg.window_start)
        assert record is not None and record.result["ok"] == msg.window_key
        pids.add(record.result["pid"])
    assert len(pids) >= 1 and all(isinstance(p, int) for p in pids)


def test_attempts_reports_usage_and_a_lost_child(
    worker: Path, redis_client: Any, ledger: Ledger
) -> None:
    msg = message("claimed_flaky", 0)
    send(ledger, [msg])
    wait_for(lambda: _state(ledger, msg) is RunState.SUCCEEDED, timeout=60,
             what="the flaky run succeeded on its third attempt")  # fmt: skip
    assert redis_client.lrange(f"claims-effects:{msg.window_key}", 0, -1) == [b"1", b"2", b"3"]
    record = ledger.get(msg.job, msg.window_start)
    assert record is not None and record.attempt == 3 and record.result == "third time"
    with ledger.engine.connect() as conn:
        reports = conn.execute(sqlalchemy.text(
            "SELECT title FROM reports WHERE window_key = :k"), {"k": msg.window_key}).all()
        usage = conn.execute(sqlalchemy.text(
            "SELECT attempt, cost_usd FROM run_usage WHERE window_key = :k ORDER BY attempt"),
            {"k": msg.window_key}).all()  # fmt: skip
        lines = conn.execute(sqlalchemy.text(
            "SELECT lines FROM run_logs WHERE window_key = :k"), {"k": msg.window_key}).all()
    assert [r.title for r in reports] == ["Summary"]
    assert [u.attempt for u in usage] == [1, 2, 3] or [u.attempt for u in usage] == [1, 3]
    assert "attempt 3 in a child" in str(lines)


def test_a_timeout_stops_the_agent_in_its_child(
    worker: Path, redis_client: Any, ledger: Ledger
) -> None:
    msg = message("claimed_slow", 0)
    send(ledger, [msg])
    wait_for(lambda: _state(ledger, msg) is RunState.TIMEOUT, timeout=20, what="timed out")
    record = ledger.get(msg.job, msg.window_start)
    assert record is not None and "time limit of 1" in (record.error_message or "")


def test_a_cancellation_reaches_the_agent_in_its_child(
    worker: Path, redis_client: Any, ledger: Ledger
) -> None:
    msg = message("claimed_patient", 0)
    send(ledger, [msg])
    wait_for(lambda: redis_client.llen(f"claims-started:{msg.window_key}"), timeout=20,
             what="the patient agent started")  # fmt: skip
    redis_client.set("agentcron:lease:claimed_patient", "999999:another-holder")  # lost
    wait_for(lambda: redis_client.llen(f"claims-cancelled:{msg.window_key}"), timeout=20,
             what="the agent saw the cancellation")  # fmt: skip
    assert redis_client.lrange(f"claims-cancelled:{msg.window_key}", 0, -1) == [b"True"]


def test_a_run_whose_children_all_die_is_recorded_as_workers_lost(
    worker: Path, redis_client: Any, ledger: Ledger
) -> None:
    msg = message("claimed_doomed", 0)
    send(ledger, [msg])
    wait_for(lambda: _state(ledger, msg) is RunState.FAILED, timeout=60, what="failed")
    record = ledger.get(msg.job, msg.window_start)
    assert record is not None and record.error_type == "WorkerLost"
    assert record.error_message == "worker lost 2 times"  # as on the default path
    assert redis_client.lrange(f"claims-effects:{msg.window_key}", 0, -1) == [b"1", b"2"]


@pytest.mark.parametrize("job", ["claimed_sleepy", "claimed_stubborn"])
def test_a_cold_shutdown_terminates_the_attempt_in_its_child(
    job: str, tmp_path: Path, redis_url: str, postgres_url: str, redis_client: Any, ledger: Ledger
) -> None:
    """Celery cancels its active requests (``SIGQUIT``): the child running the attempt is
    terminated, the run is not recorded as ended and its message is not acknowledged. An agent
    that swallows the child's ``SystemExit`` is killed after the grace (5 s; it sleeps 60)."""
    env = claims_env(tmp_path, redis_url, postgres_url)
    log = tmp_path / "cold.log"
    msg = message(job, 0)
    with celery_worker("-Q", "agentcron.sync", "-c", "1", "-n", "cold@e2e", env=env,
                       log=log) as proc:  # fmt: skip
        wait_ready("cold@e2e")
        send(ledger, [msg])
        wait_for(lambda: redis_client.llen(f"claims-started:{msg.window_key}"), timeout=30,
                 what="the sleepy agent started")  # fmt: skip
        child = int(redis_client.lindex(f"claims-started:{msg.window_key}", 0))
        proc.send_signal(signal.SIGQUIT)
        try:
            wait_for(lambda: not _alive(child), timeout=20, what="the child to be terminated")
            proc.wait(20)
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            raise AssertionError(log.read_text()[-4000:]) from exc
    assert not redis_client.llen(f"claims-effects:{msg.window_key}"), log.read_text()[-3000:]
    if job == "claimed_stubborn":  # the sleepy agent's child has needed the kill too, in CI
        assert "outlived its SIGTERM" in log.read_text(), log.read_text()[-3000:]
    assert _state(ledger, msg) is RunState.RUNNING  # left for a redelivery to take over
    assert redis_client.hlen("unacked") + redis_client.llen("agentcron.sync") == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
