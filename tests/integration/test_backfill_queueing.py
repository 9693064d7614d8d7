"""Issue 13 item 5: the windows of one backfill queue behind each other under overlap="skip"
(real prefork worker with 4 children, Redis broker, PostgreSQL ledger, the real CLI)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agentcron.ledger.records import RunState
from agentcron.ledger.store import Ledger
from tests.integration.workers_support import ROOT, celery_worker, use_broker, wait_ready, worker_env
from tests.services import wait_for

pytestmark = pytest.mark.integration

AGENTS = '''
import os, time
import redis

def slow(ctx):
    client = redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"])
    client.rpush("bf-effects:" + ctx.window_key, ctx.attempt)
    client.incr("bf-running")
    try:
        peak = int(client.get("bf-running") or 0)
        client.rpush("bf-peaks", peak)
        time.sleep(1.0)
    finally:
        client.decr("bf-running")
    return "done"
'''
SCHEDULE = '''
from agentcron import Job

JOBS = [Job("bf_job", agent="bf_agents:slow", schedule="@hourly", lease_ttl=5)]
'''
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path, redis_client: Any, redis_url: str, postgres_url: str) -> Iterator[dict[str, str]]:
    (tmp_path / "bf_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs"))
    ledger.close()
    use_broker(redis_url)
    yield worker_env(AGENTCRON_DATABASE_URL=postgres_url,
                     AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                     AGENTCRON_DATA_DIR=str(tmp_path / "data"),
                     PYTHONPATH=f"{tmp_path}:{ROOT}")  # fmt: skip


def test_backfill_windows_queue_behind_each_other_under_skip(
    env: dict[str, str], tmp_path: Path, redis_client: Any, postgres_url: str
) -> None:
    with celery_worker("-Q", "agentcron.sync", "-c", "4", "-n", "bf@test", env=env,
                       log=tmp_path / "worker.log"):  # fmt: skip
        wait_ready("bf@test")
        cli = [sys.executable, "-m", "agentcron.cli", "backfill", "bf_job",
               "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T03:00:00Z"]  # fmt: skip
        done = subprocess.run(cli, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "sent 4 window(s)" in done.stdout
        ledger = Ledger(postgres_url)
        starts = [START + timedelta(hours=n) for n in range(4)]

        def states() -> list[RunState | None]:
            return [r.state if (r := ledger.get("bf_job", s)) else None for s in starts]

        try:
            wait_for(lambda: all(s is not None and s.terminal for s in states()), timeout=60,
                     what=f"4 backfilled windows to end (now {states()})")
            assert states() == [RunState.SUCCEEDED] * 4, (tmp_path / "worker.log").read_text()[-3000:]
        finally:
            ledger.close()
    for start in starts:
        key = f"bf_job@{start:%Y-%m-%dT%H:%M:%SZ}"
        assert redis_client.lrange(f"bf-effects:{key}", 0, -1) == [b"1"]
    assert max(int(p) for p in redis_client.lrange("bf-peaks", 0, -1)) == 1  # one at a time
