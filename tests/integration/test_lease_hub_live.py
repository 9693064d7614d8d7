"""Reliability scenario 14 on the real stores, with the hub's real thread: a 1 s lease held across
3 s; a lease taken over under the hub stops its run; a cancel request reaches the holder; many
leases renewed in one batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentcron.clock import SYSTEM_CLOCK
from agentcron.leases import (
    CancelSignals,
    LeaseStore,
    RedisCancelSignals,
    RedisLeaseStore,
    SqlCancelSignals,
    SqlLeaseStore,
)
from agentcron.leases.hub import LeaseHub
from agentcron.ledger.engine import create_engine_for
from agentcron.ledger.orm import Base
from tests.services import wait_for

HOLD = 3.0
TTL = 1.0


@pytest.fixture(params=[
    "sqlite",
    pytest.param("redis", marks=pytest.mark.integration),
    pytest.param("postgres", marks=pytest.mark.integration),
])  # fmt: skip
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LeaseStore, Any]]:
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        yield RedisLeaseStore(client), RedisCancelSignals(client)
        return
    url = (f"sqlite:///{tmp_path / 'renew.sqlite'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))  # fmt: skip
    engine = create_engine_for(url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(Base.metadata.tables["leases"]))
    yield SqlLeaseStore(engine, SYSTEM_CLOCK), SqlCancelSignals(engine, SYSTEM_CLOCK)
    engine.dispose()


def test_hub_holds_a_1s_lease_across_3s(stores: tuple[LeaseStore, Any]) -> None:
    store, signals = stores
    hub = LeaseHub(store, signals, SYSTEM_CLOCK)
    lease = store.acquire("job", "me", TTL)
    assert lease is not None
    stops: list[str] = []
    with hub.hold(lease, TTL, stops.append):
        deadline = time.monotonic() + HOLD
        while time.monotonic() < deadline:
            assert store.holder("job") == lease
            time.sleep(0.1)
    assert stops == []
    assert store.release(lease) is True


def test_takeover_under_the_hub_stops_the_run(stores: tuple[LeaseStore, Any]) -> None:
    store, signals = stores
    hub = LeaseHub(store, signals, SYSTEM_CLOCK)
    lease = store.acquire("job", "me", TTL)
    assert lease is not None
    stopped = threading.Event()
    with hub.hold(lease, TTL, lambda reason: stopped.set()):
        assert store.release(lease)  # as if it had expired ...
        thief = store.acquire("job", "thief", 30)  # ... and somebody else took it
        wait_for(stopped.is_set, timeout=5, what="the run to be stopped")
    assert store.holder("job") == thief


def test_cancel_request_reaches_the_holder(stores: tuple[LeaseStore, CancelSignals]) -> None:
    store, signals = stores
    hub = LeaseHub(store, signals, SYSTEM_CLOCK)
    lease = store.acquire("job", "me", TTL)
    assert lease is not None
    reasons: list[str] = []
    with hub.hold(lease, TTL, reasons.append):
        signals.request("job", lease.token)
        wait_for(lambda: bool(reasons), timeout=5, what="the cancel request")
    assert len(reasons) == 1 and "cancel" in reasons[0]
    assert store.holder("job") == lease


@pytest.mark.integration
def test_many_leases_renewed_in_one_pipelined_batch(redis_client: Any) -> None:
    store, signals = RedisLeaseStore(redis_client), RedisCancelSignals(redis_client)
    leases = [store.acquire(f"job{i}", "me", TTL) for i in range(500)]
    assert all(leases)
    assert all(store.renew_many([(lease, 30.0) for lease in leases if lease]))
    assert all(redis_client.pttl(f"agentcron:lease:job{i}") > 2000 for i in range(500))
    signals.request("job7", leases[7].token if leases[7] else 0)
    asked = signals.requested_many([(f"job{i}", lease.token) for i, lease in enumerate(leases)
                                    if lease])  # fmt: skip
    assert [i for i, yes in enumerate(asked) if yes] == [7]
