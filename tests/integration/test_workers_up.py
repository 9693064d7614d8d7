"""``agentcron up`` smoke tests: embedded (SQLite everything) and Redis + PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy

from agentcron.ledger.store import Ledger
from tests.services import free_port, wait_for

pytestmark = pytest.mark.integration
AGENTCRON = str(Path(sys.executable).with_name("agentcron"))

AGENTS = """
import asyncio

def tick(ctx):
    return "sync " + ctx.window_key

async def atick(ctx):
    await asyncio.sleep(0.1)
    return "async " + ctx.window_key
"""
SCHEDULE = """
from agentcron import Job

JOBS = [
    Job("sync_tick", agent="up_agents:tick", schedule="*/2s"),
    Job("async_tick", agent="up_agents:atick", schedule="*/2s"),
    Job("daily_tick", agent="up_agents:tick", schedule="0 6 * * *"),
]
"""


def _succeeded(ledger: Ledger, job: str) -> int:
    try:
        return len(ledger.list_runs(job=job, state="succeeded"))
    except sqlalchemy.exc.SQLAlchemyError:
        return 0  # tables not created yet


def _run_up(
    tmp_path: Path, env: dict[str, str], database_url: str, stop: int = signal.SIGTERM
) -> str:
    (tmp_path / "up_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    out = tmp_path / "up.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen([AGENTCRON, "up", "--data-dir", "data", "--web-port",
                                 str(free_port())], cwd=tmp_path, env=env, stdout=sink,
                                stderr=subprocess.STDOUT)  # fmt: skip
    ledger = Ledger(database_url)
    try:
        wait_for(lambda: _succeeded(ledger, "sync_tick") >= 2
                 and _succeeded(ledger, "async_tick") >= 2 and _succeeded(ledger, "daily_tick"),
                 timeout=90, interval=0.5,
                 what="two successful windows of each ticking job, the daily job's first run")
        proc.send_signal(stop)
        assert proc.wait(60) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        ledger.close()
    return out.read_text()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENTCRON_")}


def _check_output(text: str) -> None:
    assert "next  sync_tick" in text and "next  async_tick" in text
    assert "succeeded" in text
    assert "async worker (event loop), 1 process: runs=" in text
    assert re.search(r"sync worker \(prefork\), \d+ process(es)?: runs=", text)
    assert "ledger: " in text and "failed" not in text
    assert "console: http://127.0.0.1:" in text and "/?token=" in text
    assert "run a job now: agentcron trigger sync_tick" in text
    # daily_tick never fires in the test; the ticks may or may not have had a window recorded by
    # the time both workers answered, so they may be listed too
    first = [line for line in text.splitlines() if "job(s) that never ran: " in line]
    assert len(first) == 1 and "daily_tick" in first[0], text
    assert set(first[0].split(": ", 1)[1].split(", ")) <= {"daily_tick", "sync_tick", "async_tick"}
    assert "-> sync sync_tick@" in text  # the run line says what the agent produced
    assert "alembic" not in text and "Deprecat" not in text  # no third-party noise


def test_up_embedded_runs_both_kinds_and_stops_cleanly(tmp_path: Path) -> None:
    text = _run_up(tmp_path, _clean_env(), f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite'}",
                   stop=signal.SIGINT)  # Ctrl-C
    _check_output(text)
    assert "embedded (SQLite broker, ledger and leases)" in text
    assert (tmp_path / "data" / "broker.sqlite").exists()
    data = tmp_path / "data"  # the embedded data dir is its owner's only
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("ledger.sqlite", "broker.sqlite"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


def test_up_with_redis_and_postgres(
    tmp_path: Path, redis_client: object, redis_url: str, postgres_url: str
) -> None:
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs"))
    ledger.close()
    env = {**_clean_env(), "AGENTCRON_BROKER_URL": redis_url,
           "AGENTCRON_DATABASE_URL": postgres_url}
    text = _run_up(tmp_path, env, postgres_url)
    _check_output(text)
    assert "broker redis://" in text
