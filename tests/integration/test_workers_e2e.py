"""Agents under the guard in real ``celery`` workers (Redis broker, PostgreSQL ledger)."""

from __future__ import annotations

import signal
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import ASYNC_TASK, SYNC_TASK, RunMessage
from agentcron.windows import window_key
from tests.integration.workers_support import celery_worker, use_broker, wait_ready, worker_env
from tests.services import wait_for
from workers.app import app

pytestmark = pytest.mark.integration

AGENTS = '''
import asyncio, os, time
import redis

def store():
    return redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"])

def effect(ctx):
    store().rpush("effects:" + ctx.window_key, ctx.attempt)

def sync_agent(ctx):
    effect(ctx)
    return {"ok": ctx.job}

async def async_agent(ctx):
    await asyncio.sleep(float(ctx.config.get("seconds", 0.05)))
    effect(ctx)
    return {"ok": ctx.job}

async def flaky(ctx):
    effect(ctx)
    store().rpush("attempt-times:" + ctx.window_key, time.monotonic())
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return "third time"

async def hangs(ctx):
    store().rpush("started:" + ctx.window_key, 1)
    await asyncio.sleep(3600)

async def until_cancelled(ctx):
    store().rpush("started:" + ctx.window_key, 1)
    for _ in range(600):
        if ctx.cancel_requested:
            store().rpush("saw-cancel:" + ctx.window_key, 1)
            return "stopped"
        await asyncio.sleep(0.05)

def on_success_sync(report):
    store().rpush("callback-sync:" + report.window_key, report.state)

async def on_success_async(report):
    await asyncio.sleep(0)
    store().rpush("callback-async:" + report.window_key, report.state)
'''

SCHEDULE = '''
from agentcron import Job

JOBS = [
    Job("sync_job", agent="e2e_agents:sync_agent", schedule="@yearly",
        on_success="e2e_agents:on_success_sync"),
    Job("async_job", agent="e2e_agents:async_agent", schedule="@yearly", overlap="allow",
        on_success="e2e_agents:on_success_async"),
    Job("slow_job", agent="e2e_agents:async_agent", schedule="@yearly", overlap="allow",
        config={"seconds": 2}),
    Job("flaky_job", agent="e2e_agents:flaky", schedule="@yearly", max_retries=3,
        backoff_base=0.2, backoff_cap=0.5),
    Job("hung_job", agent="e2e_agents:hangs", schedule="@yearly", timeout=1),
    Job("replace_job", agent="e2e_agents:until_cancelled", schedule="@yearly",
        overlap="cancel_other", lease_ttl=3),
]
'''
START = datetime(2026, 1, 1, tzinfo=UTC)
RECORDER: list[Ledger] = []  # the deployment's ledger, where publish() records windows


def message(job: str, n: int = 0) -> RunMessage:
    start = START + timedelta(hours=n)
    return RunMessage(job, window_key(job, start), start, start, trigger="manual")


def publish(msg: RunMessage, sync: bool = False, record: bool = True) -> None:
    if record:  # as trigger and backfill do: a manual window is recorded before it is sent
        RECORDER[0].record_scheduled([NewWindow(msg.job, msg.window_start, msg.window_key,
                                                msg.slot, msg.trigger)])  # fmt: skip
    app.send_task(SYNC_TASK if sync else ASYNC_TASK, kwargs=msg.to_kwargs(),
                  queue="agentcron.sync" if sync else "agentcron.async")


class Deployment:
    """Both workers over one schedule file, and the ledger they write."""

    def __init__(self, root: Path, redis: Any, ledger: Ledger, env: dict[str, str]) -> None:
        self.root, self.redis, self.ledger, self.env = root, redis, ledger, env
        self.stack = ExitStack()
        self.async_proc: Any = None

    def start(self) -> None:
        self.stack.enter_context(celery_worker(
            "-Q", "agentcron.sync", "-c", "2", "-n", "sync@e2e", env=self.env,
            log=self.root / "sync.log"))  # fmt: skip
        self.async_proc = self.stack.enter_context(celery_worker(
            "-Q", "agentcron.async", "-n", "async@e2e",
            env={**self.env, "AGENTCRON_WORKER_POOL": "async"},
            log=self.root / "async.log"))  # fmt: skip
        wait_ready("sync@e2e")
        wait_ready("async@e2e")

    def state(self, msg: RunMessage) -> RunState | None:
        record = self.ledger.get(msg.job, msg.window_start)
        return record.state if record else None

    def effects(self, msg: RunMessage, prefix: str = "effects") -> list[bytes]:
        return list(self.redis.lrange(f"{prefix}:{msg.window_key}", 0, -1))

    def wait_state(self, msg: RunMessage, state: RunState, timeout: float = 20) -> None:
        wait_for(lambda: self.state(msg) == state, timeout=timeout,
                 what=f"{msg.window_key} {state} (now {self.state(msg)})")


@pytest.fixture
def deployment(
    tmp_path: Path, redis_client: Any, redis_url: str, postgres_url: str
) -> Iterator[Deployment]:
    (tmp_path / "e2e_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs"))
    use_broker(redis_url)
    env = worker_env(AGENTCRON_DATABASE_URL=postgres_url,
                     AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                     AGENTCRON_DATA_DIR=str(tmp_path / "data"), AGENTCRON_SHUTDOWN_TIMEOUT="20")
    deployment = Deployment(tmp_path, redis_client, ledger, env)
    RECORDER[:] = [ledger]
    with deployment.stack:
        deployment.start()
        yield deployment
    ledger.close()


def test_sync_and_async_agents_run(deployment: Deployment) -> None:
    sync_msg, async_msg = message("sync_job"), message("async_job")
    publish(sync_msg, sync=True)
    publish(async_msg)
    deployment.wait_state(sync_msg, RunState.SUCCEEDED)
    deployment.wait_state(async_msg, RunState.SUCCEEDED)
    assert deployment.effects(sync_msg) == [b"1"]
    assert deployment.effects(async_msg) == [b"1"]


def test_same_message_twice_gives_one_success(deployment: Deployment) -> None:
    msgs = [message("async_job", n) for n in range(20)]
    for msg in msgs:
        publish(msg)
        publish(msg)
    sync_msg = message("sync_job", 1)
    publish(sync_msg, sync=True)
    publish(sync_msg, sync=True)
    for msg in [*msgs, sync_msg]:
        deployment.wait_state(msg, RunState.SUCCEEDED)
    wait_for(lambda: not deployment.redis.hlen("unacked"), timeout=10, what="all acked")
    for msg in [*msgs, sync_msg]:
        assert len(deployment.effects(msg)) == 1, msg.window_key


def test_retries_with_backoff(deployment: Deployment) -> None:
    msg = message("flaky_job")
    publish(msg)
    deployment.wait_state(msg, RunState.SUCCEEDED)
    assert deployment.effects(msg) == [b"1", b"2", b"3"]
    record = deployment.ledger.get(msg.job, msg.window_start)
    assert record is not None and record.attempt == 3


def test_sync_and_async_callbacks_once(deployment: Deployment) -> None:
    sync_msg, async_msg = message("sync_job", 5), message("async_job", 5)
    for _ in range(2):
        publish(sync_msg, sync=True)
        publish(async_msg)
    deployment.wait_state(sync_msg, RunState.SUCCEEDED)
    deployment.wait_state(async_msg, RunState.SUCCEEDED)
    wait_for(lambda: deployment.effects(sync_msg, "callback-sync") == [b"succeeded"],
             timeout=5, what="sync callback")
    wait_for(lambda: deployment.effects(async_msg, "callback-async") == [b"succeeded"],
             timeout=5, what="async callback")
    wait_for(lambda: not deployment.redis.hlen("unacked"), timeout=10, what="all acked")
    assert deployment.effects(sync_msg, "callback-sync") == [b"succeeded"]
    assert deployment.effects(async_msg, "callback-async") == [b"succeeded"]


def test_cancel_other_cancels_the_running_window(deployment: Deployment) -> None:
    first, second = message("replace_job", 0), message("replace_job", 1)
    publish(first)
    wait_for(lambda: deployment.effects(first, "started"), timeout=10, what="first started")
    publish(second)
    deployment.wait_state(first, RunState.CANCELLED)
    wait_for(lambda: deployment.effects(second, "started"), timeout=10, what="second started")


def test_timeout_ends_a_hung_async_agent_without_blocking_the_loop(
    deployment: Deployment,
) -> None:
    hung = message("hung_job")
    publish(hung)
    wait_for(lambda: deployment.effects(hung, "started"), timeout=10, what="hung started")
    others = [message("async_job", 100 + n) for n in range(10)]
    for msg in others:
        publish(msg)
    for msg in others:
        deployment.wait_state(msg, RunState.SUCCEEDED, timeout=5)
    deployment.wait_state(hung, RunState.TIMEOUT, timeout=10)


def test_sigterm_drains_runs_in_flight(deployment: Deployment) -> None:
    msgs = [message("slow_job", n) for n in range(20)]
    for msg in msgs:
        publish(msg)
    wait_for(lambda: all(deployment.state(m) == RunState.RUNNING for m in msgs), timeout=10,
             what="20 runs in flight")
    deployment.async_proc.send_signal(signal.SIGTERM)
    assert deployment.async_proc.wait(40) == 0
    assert all(deployment.state(m) == RunState.SUCCEEDED for m in msgs)
    log = (deployment.root / "async.log").read_text()
    assert "run statistics: runs=20" in log and "successes=20" in log
