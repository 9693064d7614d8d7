"""``agentcron trigger`` against the real Redis and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.integration.beat_support import (
    ROOT,
    beat_env,
    queued_keys,
    reset_ledger,
    rows,
    write_schedule,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def agentcron(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("agentcron")), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_trigger_dedupes_then_forces(tmp_path: Path, redis_client: redis.Redis, redis_url: str,
                                     postgres_url: str) -> None:  # fmt: skip
    engine = reset_ledger(postgres_url)
    job = 'Job("hourly", agent="beatagents:tick", schedule="0 * * * *")'
    env = beat_env(write_schedule(tmp_path, job), redis_url, postgres_url)
    first = agentcron(env, "trigger", "hourly")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("sent hourly@")
    again = agentcron(env, "trigger", "hourly")
    assert again.returncode == 0 and again.stdout.startswith("deduped"), again.stdout
    forced = agentcron(env, "trigger", "hourly", "--force")
    assert forced.returncode == 0 and "forced" in forced.stdout
    recorded = rows(engine, "hourly")
    assert len(recorded) == 1 and recorded[0]["trigger"] == "manual"
    assert queued_keys(redis_client) == [recorded[0]["window_key"]] * 2
    unknown = agentcron(env, "trigger", "nope")
    assert unknown.returncode == 1 and "no job named" in unknown.stderr
    engine.dispose()
