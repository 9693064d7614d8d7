"""The factory picks Redis or SQL from the settings (no connection is made here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from agentcron.clock import FrozenClock
from agentcron.leases import (
    AsyncRedisLeaseStore,
    RedisCancelSignals,
    RedisLeaseStore,
    SqlCancelSignals,
    SqlLeaseStore,
    open_async_cancel_signals,
    open_async_lease_store,
    open_cancel_signals,
    open_lease_store,
)
from agentcron.leases.cancel import AsyncRedisCancelSignals
from agentcron.leases.factory import ThreadedCancelSignals, ThreadedLeaseStore
from agentcron.leases.redis import parse_value, ttl_ms
from agentcron.settings import Settings


def test_redis_backend(tmp_path: Path, clock: FrozenClock) -> None:
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    assert settings.lease_backend == "redis"
    assert isinstance(open_lease_store(settings, None, clock), RedisLeaseStore)
    assert isinstance(open_cancel_signals(settings, None, clock), RedisCancelSignals)


async def test_redis_backend_async(tmp_path: Path, clock: FrozenClock) -> None:
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    assert isinstance(open_async_lease_store(settings, None, clock), AsyncRedisLeaseStore)
    assert isinstance(open_async_cancel_signals(settings, None, clock), AsyncRedisCancelSignals)


async def test_sql_backend(tmp_path: Path, clock: FrozenClock) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.lease_backend == "sql"
    engine = sa.create_engine("sqlite://")
    assert isinstance(open_lease_store(settings, engine, clock), SqlLeaseStore)
    assert isinstance(open_cancel_signals(settings, engine, clock), SqlCancelSignals)
    assert isinstance(open_async_lease_store(settings, engine, clock), ThreadedLeaseStore)
    assert isinstance(open_async_cancel_signals(settings, engine, clock), ThreadedCancelSignals)
    with pytest.raises(ValueError, match="engine"):
        open_lease_store(settings, None, clock)


def test_redis_value_helpers() -> None:
    assert ttl_ms(0.3) == 300 and ttl_ms(0.0001) == 1
    with pytest.raises(ValueError):
        ttl_ms(0)
    lease = parse_value("job", b"12:owner:with:colons")
    assert lease is not None and lease.token == 12 and lease.owner == "owner:with:colons"
    assert parse_value("job", None) is None
    assert parse_value("job", "garbage") is None
