"""Poison entries among good ones, in real ``celery`` workers: both pools, both transports.

Redis broker + PostgreSQL ledger, and the embedded SQLite broker + SQLite ledger. Before the dead
letters, one raw non-JSON entry made the sync worker exit ("Unrecoverable error") and made the
async worker lose the whole batch it was in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agentcron.deadletters import DeadLetterStore
from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import ASYNC_TASK, SYNC_TASK, RunMessage
from agentcron.windows import window_key
from tests.integration.workers_support import ROOT, celery_worker, worker_env
from tests.poison_entries import envelope, kind_of_label, poison_entries, push, redelivered
from tests.services import wait_for

pytestmark = pytest.mark.integration
AGENTCRON = str(Path(sys.executable).with_name("agentcron"))
CELERY = str(Path(sys.executable).with_name("celery"))
MAX_BYTES = 8192
AGENTS = '''
import os
import redis

def effect(ctx):
    redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"]).rpush(
        "effects:" + ctx.window_key, ctx.attempt)

async def async_agent(ctx):
    effect(ctx)
'''
SCHEDULE = '''
from agentcron import Job

JOBS = [
    Job("dl_sync", agent="dl_agents:effect", schedule="@yearly", overlap="allow"),
    Job("dl_async", agent="dl_agents:async_agent", schedule="@yearly", overlap="allow"),
]
'''
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Setup:
    root: Path
    broker_url: str
    database_url: str
    env: dict[str, str]
    ledger: Ledger
    store: DeadLetterStore
    redis: Any

    def good(self, kind: str, n: int) -> tuple[RunMessage, bytes]:
        job = f"dl_{kind}"
        start = START + timedelta(hours=n)
        msg = RunMessage(job, window_key(job, start), start, start, trigger="manual")
        # as trigger does: a manual window is recorded before it is sent (workers refuse others)
        self.ledger.record_scheduled([NewWindow(msg.job, msg.window_start, msg.window_key,
                                                msg.slot, msg.trigger)])  # fmt: skip
        queue = f"agentcron.{kind}"
        return msg, envelope(SYNC_TASK if kind == "sync" else ASYNC_TASK, msg.to_kwargs(), queue)

    def succeeded_once(self, msg: RunMessage) -> bool:
        record = self.ledger.get(msg.job, msg.window_start)
        effects = self.redis.llen(f"effects:{msg.window_key}")
        return record is not None and record.state == RunState.SUCCEEDED and effects == 1

    def cli(self, *args: str, celery: bool = False) -> subprocess.CompletedProcess[str]:
        command = ([CELERY, "-A", "workers.app", "agents", "dead-letters", *args] if celery
                   else [AGENTCRON, "dead-letters", *args])  # fmt: skip
        return subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip


@pytest.fixture(params=["redis", "sqlite"])
def setup(request: Any, tmp_path: Path, redis_client: Any, redis_url: str,
          postgres_url: str) -> Iterator[Setup]:  # fmt: skip
    (tmp_path / "dl_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    if request.param == "redis":
        broker_url, database_url = redis_url, postgres_url
    else:
        broker_url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
        database_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(database_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs"))
        conn.execute(sqlalchemy.text("DELETE FROM dead_letters"))
    env = worker_env(AGENTCRON_BROKER_URL=broker_url, AGENTCRON_DATABASE_URL=database_url,
                     AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                     AGENTCRON_DATA_DIR=str(tmp_path / "data"),
                     AGENTCRON_MESSAGE_MAX_BYTES=str(MAX_BYTES))  # fmt: skip
    store = DeadLetterStore(ledger.engine)
    yield Setup(tmp_path, broker_url, database_url, env, ledger, store, redis_client)
    ledger.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_poison_entries_are_dead_lettered_and_the_good_ones_run(setup: Setup, kind: str) -> None:
    queue = f"agentcron.{kind}"
    goods = [setup.good(kind, n) for n in range(10)]
    poison = poison_entries(queue, MAX_BYTES)
    for _, raw in goods[:5]:
        push(setup.broker_url, queue, raw)
    for raw in poison.values():
        push(setup.broker_url, queue, raw)
    for _, raw in goods[5:]:
        push(setup.broker_url, queue, raw)
    args = ["-Q", queue, "-n", f"{kind}@dl"] + (["-c", "2"] if kind == "sync" else [])
    env = {**setup.env, **({"AGENTCRON_WORKER_POOL": "async"} if kind == "async" else {})}
    log = setup.root / "worker.log"
    with celery_worker(*args, env=env, log=log) as proc:
        wait_for(lambda: all(setup.succeeded_once(m) for m, _ in goods)
                 and setup.store.count() >= len(poison), timeout=90, interval=0.5,
                 what="10 good windows succeeded once and 6 dead letters")  # fmt: skip
        assert proc.poll() is None, log.read_text()[-3000:]
        letters = setup.store.list()
        assert sorted(d.kind for d in letters) == sorted(kind_of_label(k) for k in poison)
        assert {d.queue for d in letters} == {queue}
        by_kind = {d.kind: d for d in letters}
        assert by_kind["undecodable"].reason.startswith("undecodable: ")
        assert by_kind["too_large"].truncated is True and by_kind["too_large"].size > MAX_BYTES
        assert "no.such.task" in by_kind["unknown_task"].reason
        assert {d.raw for d in letters if not d.truncated} <= set(poison.values())
        # delivered again, as kombu restores a message whose ack a broker restart lost
        push(setup.broker_url, queue, redelivered(poison["undecodable-list-id"]))
        wait_for(lambda: "delivered again" in log.read_text(), timeout=60, interval=0.5,
                 what="the redelivered entry")  # fmt: skip
        assert setup.store.count() == len(poison)  # stored once
        _requeue_and_purge(setup, kind, queue, proc)
    text = log.read_text()
    assert "Unrecoverable error" not in text and "Traceback" not in text, text[-3000:]
    assert text.count("dead letter #") - text.count("delivered again") == len(poison)  # once each


def _requeue_and_purge(setup: Setup, kind: str, queue: str, proc: Any) -> None:
    """--json lists them; --requeue puts an entry back as it was (a good one then runs);
    --purge empties the store; the worker is still up."""
    listed = json.loads(setup.cli("--json").stdout)
    assert len(listed) == len(poison_entries(queue, MAX_BYTES))
    assert all("raw" not in d and d["entry"] for d in listed)
    msg, raw = setup.good(kind, 100)
    letter_id = setup.store.add("forged: a test entry", queue, raw)
    done = setup.cli("--requeue", str(letter_id))
    assert done.returncode == 0 and f"#{letter_id}" in done.stdout, done.stderr
    wait_for(lambda: setup.succeeded_once(msg), timeout=60, interval=0.5, what="requeued run")
    assert setup.store.get(letter_id) is None
    missing = setup.cli("--requeue", "999999")
    assert missing.returncode == 2 and "no dead letter #999999" in missing.stderr
    assert "Traceback" not in missing.stderr
    purged = setup.cli("--purge", celery=True)
    assert purged.returncode == 0 and f"purged {len(listed)}" in purged.stdout, purged.stderr
    assert setup.store.count() == 0
    assert proc.poll() is None
