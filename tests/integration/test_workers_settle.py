"""Prefork children run sync agents; the worker's main process records the runs
(``AGENTCRON_SYNC_SETTLE=main``).

A real ``celery worker -c 2`` on Redis and PostgreSQL: every run ends succeeded once, with its
callback once, its lease released and its message acknowledged, and the statistics the worker
logs at shutdown show where the completions were written: none by a child (each deferred its
run), all by the main process (``settled``), in at most as many batches as runs.
"""

from __future__ import annotations

import re
import signal
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
import redis

def store():
    return redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"])

def agent(ctx):
    store().rpush("settle-effects:" + ctx.window_key, ctx.attempt)
    return {"ok": ctx.window_key}

def called_back(report):
    store().rpush("settle-callback:" + report.window_key, report.state)
'''

SCHEDULE = '''
from agentcron import Job

JOBS = [Job("settled_job", agent="settle_agents:agent", schedule="@yearly", overlap="allow",
            on_success="settle_agents:called_back")]
'''
START = datetime(2026, 2, 1, tzinfo=UTC)
RUNS = 20


def message(n: int) -> RunMessage:
    start = START + timedelta(hours=n)
    return RunMessage("settled_job", window_key("settled_job", start), start, start,
                      trigger="manual")  # fmt: skip


@pytest.fixture
def ledger(postgres_url: str) -> Iterator[Ledger]:
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs WHERE job = 'settled_job'"))
    yield ledger
    ledger.close()


@pytest.mark.parametrize("prefetch", ["1", "4"], ids=["inline", "settling-thread"])
def test_children_run_and_the_main_process_records_every_run(
    tmp_path: Path, redis_client: Any, redis_url: str, postgres_url: str, ledger: Ledger,
    prefetch: str,
) -> None:  # fmt: skip
    """Prefetch 1: settled on the consumer's loop. Prefetch 4 (``AGENTCRON_SYNC_PREFETCH``):
    on the settling thread, answered back on the loop; the same promises."""
    (tmp_path / "settle_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    use_broker(redis_url)
    env = worker_env(AGENTCRON_DATABASE_URL=postgres_url,
                     AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                     AGENTCRON_DATA_DIR=str(tmp_path / "data"),
                     AGENTCRON_SYNC_SETTLE="main",
                     AGENTCRON_SYNC_PREFETCH=prefetch)  # fmt: skip
    log = tmp_path / "sync.log"
    msgs = [message(n) for n in range(RUNS)]
    with celery_worker("-Q", "agentcron.sync", "-c", "2", "-n", "settle@e2e", env=env,
                       log=log) as proc:  # fmt: skip
        wait_ready("settle@e2e")
        ledger.record_scheduled([NewWindow(m.job, m.window_start, m.window_key, m.slot,
                                           m.trigger) for m in msgs])  # fmt: skip
        for msg in msgs:
            app.send_task(SYNC_TASK, kwargs=msg.to_kwargs(), queue="agentcron.sync")
        for msg in msgs:
            wait_for(lambda m=msg: _state(ledger, m) is RunState.SUCCEEDED, timeout=30,
                     what=f"{msg.window_key} succeeded")  # fmt: skip
        wait_for(lambda: not redis_client.hlen("unacked"), timeout=10, what="all acked")
        wait_for(lambda: all(redis_client.llen(f"settle-callback:{m.window_key}") for m in msgs),
                 timeout=10, what="every callback")  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    for msg in msgs:
        assert redis_client.lrange(f"settle-effects:{msg.window_key}", 0, -1) == [b"1"]
        assert redis_client.lrange(f"settle-callback:{msg.window_key}", 0, -1) == [b"succeeded"]
        assert not redis_client.exists(f"agentcron:lease:{msg.window_key}")
    text = log.read_text()
    deferred = [float(n) for n in re.findall(r"run statistics: .*?\bdeferred=(\d+)", text)]
    settled = re.findall(r"run statistics: .*?\bsuccesses=(\d+).*?settled=(\d+), "
                         r"settle_batches=(\d+), settle_thread_batches=(\d+)", text)  # fmt: skip
    assert sum(deferred) == RUNS, text[-3000:]  # every run stopped short of its completion
    assert len(settled) == 1, text[-3000:]  # one main process recorded them all
    successes, count, batches, on_thread = (int(x) for x in settled[0])
    assert successes == count == RUNS and 1 <= batches <= RUNS
    assert on_thread == (batches if prefetch != "1" else 0)  # where they were recorded


def _state(ledger: Ledger, msg: RunMessage) -> RunState | None:
    record = ledger.get(msg.job, msg.window_start)
    return record.state if record else None
