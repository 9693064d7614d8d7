"""The same contract over every limit store: Redis (Lua on its clock), SQLite and PostgreSQL
(injected clock); then the gate's holds, sync and async."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FrozenClock, SystemClock
from agentcron.ledger.store import Ledger
from agentcron.limits import Limit, LimitGate, LimitWaitExceeded, RunLimits
from agentcron.limits.redis import RedisLimitStore
from agentcron.limits.sql import SqlLimitStore
from tests.services import reset_postgres, wait_for

pytestmark = pytest.mark.integration


class Store:
    """A limit store and a way to move its time forward."""

    def __init__(self, store: Any, advance: Any) -> None:
        self.store, self.advance = store, advance


@pytest.fixture(params=["redis", "sqlite", "postgresql"])
def limits(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        yield Store(RedisLimitStore(client), time.sleep)  # Redis TIME: really wait
        return
    clock = FrozenClock("2026-03-17T06:00:00Z")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
    ledger = Ledger(url, clock)
    ledger.upgrade()
    yield Store(SqlLimitStore(ledger.engine, clock), clock.advance)
    ledger.close()


def test_slots_are_capped_renewed_released_and_expire(limits: Store) -> None:
    limit = Limit("slots", concurrency=2, ttl=1.0)
    store = limits.store
    assert store.acquire_slot(limit, "a") and store.acquire_slot(limit, "b")
    assert not store.acquire_slot(limit, "c")
    assert store.acquire_slot(limit, "a")  # a holder asking again keeps its one slot
    assert sorted(store.holders(limit)) == ["a", "b"]
    store.release_slot(limit, "b")
    assert store.acquire_slot(limit, "c")
    limits.advance(0.6)
    assert store.renew_slots([(limit, "a")]) == [True]
    limits.advance(0.6)  # c's lease ran out (nobody renewed it); a's was renewed
    assert store.holders(limit) == ["a"]
    assert store.renew_slots([(limit, "a"), (limit, "c")]) == [True, False]
    assert store.acquire_slot(limit, "d") and not store.acquire_slot(limit, "e")


def test_waiters_are_noted_fleet_wide_and_expire(limits: Store) -> None:
    limit = Limit("slots", concurrency=1)
    store = limits.store
    store.mark_waiting(limit, "w1", 1.0)
    store.mark_waiting(limit, "w2", 5.0)
    assert sorted(store.waiters(limit)) == ["w1", "w2"] and store.holders(limit) == []
    store.unmark_waiting(limit, "w2")
    limits.advance(1.1)  # w1 died without saying so: its note expired
    assert store.waiters(limit) == []


def test_rate_window_counts_requests_and_tokens(limits: Store) -> None:
    limit = Limit("rate", per_minute=3, tokens_per_minute=100, period=1.0)
    store = limits.store
    assert store.take_rate(limit, 10) == 0.0
    assert store.take_rate(limit, 80) == 0.0
    wait = store.take_rate(limit, 20)  # 110 tokens > 100: wait for the first grant to leave
    assert 0 < wait <= 1.01
    assert store.take_rate(limit, 10) == 0.0  # 100 tokens, 3 requests
    assert store.recent(limit) == (3, 100)
    assert 0 < store.take_rate(limit, 0) <= 1.01  # a fourth request must wait
    with pytest.raises(ValueError, match="exceed"):
        store.take_rate(limit, 101)
    limits.advance(1.05)
    assert store.take_rate(limit, 100) == 0.0
    assert store.recent(limit) == (1, 100)


def test_a_hold_waits_for_a_slot_and_gives_up_after_the_wait(redis_client: Any) -> None:
    gate = LimitGate(RedisLimitStore(redis_client), SystemClock(), wait=0.3)
    one = Limit("one", concurrency=1, ttl=3, period=0.1)
    limits = RunLimits(gate, {"one": one})
    with limits.hold("one", owner="a"):
        failed: list[BaseException] = []

        def waiter() -> None:
            try:
                with limits.hold("one", owner="b", wait=3.0):
                    pass
            except LimitWaitExceeded as exc:
                failed.append(exc)

        started = time.monotonic()
        thread = threading.Thread(target=waiter)
        thread.start()
        wait_for(lambda: gate.store.waiters(one) != [], timeout=3, what="b noted as waiting")
        (noted,) = gate.store.waiters(one)
        assert noted.startswith("b#")  # shown fleet-wide while it waits
        thread.join(10)
        assert len(failed) == 1 and 1.0 < time.monotonic() - started < 10  # gave up on time
        assert gate.store.waiters(one) == []  # and no more
        assert gate.stats()["one"]["refused"] == 1 and gate.stats()["one"]["held"] == 1
    with limits.hold("one", owner="c"):  # released on exit
        pass
    with pytest.raises(ValueError, match="no limit named 'two'"):
        limits.hold("two")


def test_async_holds_never_exceed_the_concurrency(redis_client: Any) -> None:
    gate = LimitGate(RedisLimitStore(redis_client), SystemClock(), wait=10)
    limits = RunLimits(gate, {"two": Limit("two", concurrency=2, ttl=3)})
    inside: list[int] = []
    peak: list[int] = []

    async def call(n: int) -> None:
        async with limits.hold("two", owner=f"w{n}"):
            inside.append(n)
            peak.append(len(inside))
            await asyncio.sleep(0.05)
            inside.remove(n)

    async def main() -> None:
        await asyncio.gather(*(call(n) for n in range(8)))

    asyncio.run(main())
    assert max(peak) == 2 and len(peak) == 8
    assert gate.stats()["two"]["granted"] == 8 and gate.stats()["two"]["held"] == 0


def test_redis_batches_keep_each_calls_meaning(redis_client: Any) -> None:
    store = RedisLimitStore(redis_client)
    two = Limit("two", concurrency=2, ttl=5)
    rate = Limit("r", per_minute=2, tokens_per_minute=50)
    assert store.acquire_slots([(two, "a"), (two, "b"), (two, "c")]) == [True, True, False]
    store.release_slots([(two, "a"), (two, "b")])
    assert store.holders(two) == []
    taken = store.take_rates([(rate, 10), (rate, 60), (rate, 10), (rate, 10)])
    assert taken[0] == 0.0 and isinstance(taken[1], ValueError) and taken[2] == 0.0
    assert isinstance(taken[3], float) and taken[3] > 0  # the third request must wait
    redis_client.script_flush()  # Redis lost its scripts (a restart): the batch loads them
    assert store.acquire_slots([(two, "d"), (two, "e")]) == [True, True]
