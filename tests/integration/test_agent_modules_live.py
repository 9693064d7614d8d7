"""Issue 13 item 6 against real processes: a row written straight into the ``schedules`` table
(SQL, no CLI) naming an undeclared agent never runs on a real ``celery`` worker, and a class is
never instantiated from a name (the attack: agent ``cProfile:Profile``, task = Python source,
which ``Profile().run(task)`` executes)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
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
SLOT = datetime(2026, 1, 1, tzinfo=UTC)
DECLARED = '''
import os, redis

def tick(ctx):
    redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"]).rpush("ran", ctx.job)


class Agent:
    def __init__(self):
        redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"]).set("pwned:init", 1)

    def run(self, task):
        return task
'''
UNDECLARED = '''
import os, redis

def pwn(ctx):
    redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"]).set("pwned:" + ctx.job, 1)
'''
SCHEDULE = '''
from agentcron import Job

JOBS = [Job("declared", agent="declared_agents:tick", schedule="@yearly")]
'''
PAYLOAD = ("import os, redis; redis.Redis.from_url(os.environ['AGENTCRON_TEST_REDIS_URL'])"
           ".set('pwned:cprofile', 1)")
ROWS = {
    "cprofile": {"agent": "cProfile:Profile", "schedule": "@yearly", "task": PAYLOAD},
    "ossystem": {"agent": "os:system", "schedule": "@yearly", "task": "touch /tmp/x"},
    "evil": {"agent": "undeclared_agents:pwn", "schedule": "@yearly"},
    "reexport": {"agent": "declared_agents:redis.Redis", "schedule": "@yearly"},
    "klass": {"agent": "declared_agents:Agent", "schedule": "@yearly"},
    "good": {"agent": "declared_agents:tick", "schedule": "@yearly"},
}


@pytest.fixture
def deployment(tmp_path: Path, redis_client: Any, redis_url: str,
               postgres_url: str) -> Iterator[tuple[Path, Ledger]]:  # fmt: skip
    (tmp_path / "declared_agents.py").write_text(textwrap.dedent(DECLARED))
    (tmp_path / "undeclared_agents.py").write_text(textwrap.dedent(UNDECLARED))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs"))
        conn.execute(sqlalchemy.text("DELETE FROM schedules"))
        for revision, (name, definition) in enumerate(ROWS.items(), 1):
            conn.execute(sqlalchemy.text(
                "INSERT INTO schedules (name, definition, enabled, source, revision)"
                " VALUES (:n, CAST(:d AS json), true, 'api', :r)"),
                {"n": name, "d": json.dumps(definition), "r": revision})  # fmt: skip
    use_broker(redis_url)
    env = worker_env(AGENTCRON_DATABASE_URL=postgres_url,
                     AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                     AGENTCRON_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(tmp_path))
    env["PYTHONPATH"] = f"{tmp_path}:{worker_env()['PYTHONPATH']}"
    with celery_worker("-Q", "agentcron.sync", "-c", "1", "-n", "modules@test", env=env,
                       log=tmp_path / "worker.log"):  # fmt: skip
        wait_ready("modules@test")
        yield tmp_path, ledger
    ledger.close()


def _publish(ledger: Ledger, job: str) -> RunMessage:
    message = RunMessage(job, window_key(job, SLOT), SLOT, SLOT, trigger="manual")
    ledger.record_scheduled([NewWindow(job, SLOT, message.window_key, SLOT, "manual")])
    app.send_task(SYNC_TASK, kwargs=message.to_kwargs(), queue="agentcron.sync")
    return message


def test_rows_naming_undeclared_agents_never_run(
    deployment: tuple[Path, Ledger], redis_client: Any
) -> None:
    root, ledger = deployment
    attacks = [_publish(ledger, name) for name in ("cprofile", "ossystem", "evil", "reexport", "klass")]
    good = _publish(ledger, "good")  # same module as the file's job: declared
    wait_for(lambda: (r := ledger.get("good", SLOT)) is not None
             and r.state is RunState.SUCCEEDED, timeout=30, what="the declared runtime job")
    wait_for(lambda: not redis_client.llen("agentcron.sync") and not redis_client.hlen("unacked"),
             timeout=20, what="every message acknowledged")  # fmt: skip
    assert redis_client.lrange("ran", 0, -1) == [b"good"]
    assert not redis_client.keys("pwned:*")
    for message in attacks:
        record = ledger.get(message.job, SLOT)
        assert record is not None and record.state is RunState.SCHEDULED, message.job
    log = (root / "worker.log").read_text()
    for name in ("cprofile", "ossystem", "evil", "reexport", "klass"):
        assert f"ALERT {name} window - refused" in log, name
    assert "is a class" in log and "not a declared agent module" in log
    assert good.window_key in log
