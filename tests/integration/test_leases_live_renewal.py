"""Reliability scenario 14 on the real stores: a 1 s lease held across 3 s by renewal; a lease
taken over under a renewer is reported lost; a cancel request reaches the holder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import sqlalchemy as sa

from agentcron.clock import SYSTEM_CLOCK
from agentcron.leases import (
    AsyncRedisLeaseStore,
    CancelSignals,
    LeaseStore,
    RedisCancelSignals,
    RedisLeaseStore,
    SqlCancelSignals,
    SqlLeaseStore,
    TaskRenewer,
    ThreadRenewer,
)
from agentcron.leases.cancel import AsyncRedisCancelSignals
from agentcron.ledger.base import Base
from agentcron.ledger.engine import create_engine_for
from tests.services import wait_for

HOLD = 3.0
TTL = 1.0


@pytest.fixture(params=[
    "sqlite",
    pytest.param("redis", marks=pytest.mark.integration),
    pytest.param("postgres", marks=pytest.mark.integration),
])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LeaseStore, Any]]:
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        yield RedisLeaseStore(client), RedisCancelSignals(client)
        return
    url = (f"sqlite:///{tmp_path / 'renew.sqlite'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    engine = create_engine_for(url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(Base.metadata.tables["leases"]))
    yield SqlLeaseStore(engine, SYSTEM_CLOCK), SqlCancelSignals(engine, SYSTEM_CLOCK)
    engine.dispose()


def held_throughout(store: LeaseStore, name: str, seconds: float) -> list[Any]:
    """Poll the holder while an agent would be running; every sample must be the lease."""
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(store.holder(name))
        time.sleep(0.1)
    return samples


def test_thread_renewer_holds_a_1s_lease_across_3s(stores: tuple[LeaseStore, Any]) -> None:
    store, _ = stores
    lease = store.acquire("job", "me", TTL)
    assert lease is not None
    with ThreadRenewer(store, lease, TTL, clock=SYSTEM_CLOCK) as renewer:
        samples = held_throughout(store, "job", HOLD)
    assert samples and all(sample == lease for sample in samples)
    assert not renewer.lost
    assert store.release(lease) is True


async def test_task_renewer_holds_a_1s_lease_across_3s(stores: tuple[LeaseStore, Any]) -> None:
    store, _ = stores
    lease = store.acquire("job", "me", TTL)
    assert lease is not None
    async with TaskRenewer(store, lease, TTL, clock=SYSTEM_CLOCK) as renewer:
        deadline = time.monotonic() + HOLD
        while time.monotonic() < deadline:
            assert store.holder("job") == lease
            await SYSTEM_CLOCK.asleep(0.1)
    assert not renewer.lost
    assert store.release(lease) is True


def test_takeover_under_a_thread_renewer_calls_on_lost(stores: tuple[LeaseStore, Any]) -> None:
    store, _ = stores
    lease = store.acquire("job", "me", TTL)
    assert lease is not None
    lost: list[str] = []
    with ThreadRenewer(store, lease, TTL, clock=SYSTEM_CLOCK, on_lost=lost.append) as renewer:
        assert store.release(lease)  # as if it had expired ...
        thief = store.acquire("job", "thief", 30)  # ... and somebody else took it
        wait_for(lambda: renewer.lost, timeout=5, what="on_lost")
    assert len(lost) == 1
    assert store.holder("job") == thief


def test_cancel_request_reaches_the_holder(stores: tuple[LeaseStore, CancelSignals]) -> None:
    store, signals = stores
    lease = store.acquire("job", "me", TTL)
    assert lease is not None
    cancels: list[str] = []
    with ThreadRenewer(store, lease, TTL, clock=SYSTEM_CLOCK, cancel_signals=signals,
                       on_cancel=cancels.append, poll_interval=0.05) as renewer:
        signals.request("job", lease.token)
        wait_for(lambda: renewer.cancelled, timeout=5, what="on_cancel")
    assert len(cancels) == 1 and not renewer.lost


@pytest.mark.integration
async def test_async_redis_store_renews_and_cancels(redis_url: str, redis_client: Any) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        store = AsyncRedisLeaseStore(client)
        signals = AsyncRedisCancelSignals(client)
        lease = await store.acquire("job", "me", TTL)
        assert lease is not None and await store.acquire("job", "other", TTL) is None
        assert await store.next_token("job") == lease.token + 1
        cancels: list[str] = []
        renewer = TaskRenewer(store, lease, TTL, clock=SYSTEM_CLOCK, cancel_signals=signals,
                              on_cancel=cancels.append, poll_interval=0.05)
        async with renewer:
            deadline = time.monotonic() + HOLD
            while time.monotonic() < deadline:
                assert await store.holder("job") == lease
                await SYSTEM_CLOCK.asleep(0.1)
            await signals.request("job", lease.token)
            for _ in range(100):
                if renewer.cancelled:
                    break
                await SYSTEM_CLOCK.asleep(0.05)
        assert cancels and not renewer.lost
        assert redis_client.pttl("agentcron:lease:job") > 0
        assert await store.release(lease) is True
        assert await store.holder("job") is None
        assert await store.renew(lease, TTL) is False
    finally:
        await client.aclose()
