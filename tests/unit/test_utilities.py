"""backoff_delay, safe_call/asafe_call, the clock, settings."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

from agentcron.backoff import backoff_delay
from agentcron.callbacks import asafe_call, safe_call
from agentcron.clock import FrozenClock
from agentcron.errors import ConfigError
from agentcron.settings import Settings, redact_url


def test_backoff_full_jitter_capped_and_deterministic() -> None:
    a = [backoff_delay(n, 1.0, 10.0, random.Random(3)) for n in range(1, 9)]
    b = [backoff_delay(n, 1.0, 10.0, random.Random(3)) for n in range(1, 9)]
    assert a == b
    rng = random.Random(5)
    for attempt in range(1, 40):
        delay = backoff_delay(attempt, 0.5, 30.0, rng)
        assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** (attempt - 1))
    with pytest.raises(ValueError):
        backoff_delay(0)


def test_safe_call_sync_async_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    async def async_cb(x: str) -> None:
        await asyncio.sleep(0)
        seen.append("async " + x)

    def broken(x: str) -> None:
        raise RuntimeError("callback broke")

    assert safe_call(seen.append, "sync")
    assert safe_call(async_cb, "no loop")
    with caplog.at_level(logging.ERROR):
        assert not safe_call(broken, "x")
    assert "callback broke" in caplog.text

    async def inside_loop() -> None:
        assert safe_call(async_cb, "loop running")
        assert await asafe_call(async_cb, "awaited")
        assert not await asafe_call(broken, "x")

    asyncio.run(inside_loop())
    assert seen == ["sync", "async no loop", "async loop running", "async awaited"]


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    before = clock.now()
    clock.sleep(30)
    assert (clock.now() - before).total_seconds() == 30 and clock.slept == [30]
    with pytest.raises(ValueError):
        clock.set("2026-01-01T00:00:00Z")


def test_settings_defaults_are_embedded(tmp_path: Path) -> None:
    settings = Settings.from_env({"AGENTCRON_DATA_DIR": str(tmp_path)})
    assert settings.embedded and settings.lease_backend == "sql"
    assert settings.database_url.startswith("sqlite:///") and str(tmp_path) in settings.database_url


def test_settings_distributed_and_bad_values() -> None:
    env = {"AGENTCRON_BROKER_URL": "redis://:s3cret@127.0.0.1:6379/0",
           "AGENTCRON_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1/test"}  # fmt: skip
    settings = Settings.from_env(env)
    assert settings.lease_backend == "redis" and not settings.embedded
    assert "s3cret" not in redact_url(settings.broker_url)
    with pytest.raises(ConfigError, match="AGENTCRON_VISIBILITY_TIMEOUT"):
        Settings.from_env({"AGENTCRON_VISIBILITY_TIMEOUT": "soon"})
