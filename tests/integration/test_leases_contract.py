"""One contract for every lease store and every cancel-signal store.

The same bodies run over memory (FrozenClock), Redis (real server), SQLite (a file) and
PostgreSQL. ``Backend.expire`` lets a lease lapse: the memory clock is advanced; the real stores
use short TTLs and are polled with a deadline.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentcron import keys
from agentcron.clock import SYSTEM_CLOCK, FrozenClock
from agentcron.leases import (
    CancelSignals,
    LeaseStore,
    MemoryCancelSignals,
    MemoryLeaseStore,
    RedisCancelSignals,
    RedisLeaseStore,
    SqlCancelSignals,
    SqlLeaseStore,
)
from agentcron.ledger.engine import create_engine_for
from agentcron.ledger.orm import Base
from tests.services import wait_for

TTL = 0.5


@dataclass
class Backend:
    kind: str
    store: LeaseStore
    signals: CancelSignals
    expire: Callable[[str], None]
    redis: Any = None
    engine: sa.Engine | None = None
    url: str = ""


def sql_engine(url: str) -> sa.Engine:
    engine = create_engine_for(url, **({"pool_size": 60} if url.startswith("postgres") else {}))
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(Base.metadata.tables["leases"]))
    return engine


def _wait_expired(store: LeaseStore) -> Callable[[str], None]:
    def expire(name: str) -> None:
        wait_for(lambda: store.holder(name) is None, timeout=5, what=f"{name} to expire")

    return expire


@pytest.fixture(params=[
    "memory",
    "sqlite",
    pytest.param("redis", marks=pytest.mark.integration),
    pytest.param("postgres", marks=pytest.mark.integration),
])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind = request.param
    if kind == "memory":
        clock = FrozenClock()
        store: LeaseStore = MemoryLeaseStore(clock)
        yield Backend(kind, store, MemoryCancelSignals(clock, ttl=TTL),
                      lambda name: clock.advance(TTL + 0.001))
    elif kind == "redis":
        client = request.getfixturevalue("redis_client")
        store = RedisLeaseStore(client)
        yield Backend(kind, store, RedisCancelSignals(client, ttl=TTL), _wait_expired(store),
                      redis=client)
    else:
        url = (f"sqlite:///{tmp_path / 'leases.sqlite'}" if kind == "sqlite"
               else request.getfixturevalue("postgres_url"))
        engine = sql_engine(url)
        store = SqlLeaseStore(engine, SYSTEM_CLOCK)
        yield Backend(kind, store, SqlCancelSignals(engine, SYSTEM_CLOCK, ttl=TTL),
                      _wait_expired(store), engine=engine, url=url)
        engine.dispose()


def test_acquire_holder_renew_release(backend: Backend) -> None:
    store = backend.store
    lease = store.acquire("job-a", "owner-1", TTL)
    assert lease is not None and lease.name == "job-a" and lease.owner == "owner-1"
    assert lease.token >= 1
    assert store.holder("job-a") == lease
    assert store.renew(lease, TTL) is True
    assert store.holder("job-a") == lease
    assert store.release(lease) is True
    assert store.holder("job-a") is None
    assert store.release(lease) is False
    assert store.renew(lease, TTL) is False


def test_second_acquire_fails_while_held(backend: Backend) -> None:
    store = backend.store
    first = store.acquire("job-a", "owner-1", 30)
    assert first is not None
    assert store.acquire("job-a", "owner-2", 30) is None
    assert store.acquire("job-a", "owner-1", 30) is None  # not re-entrant either
    assert store.holder("job-a") == first
    assert store.acquire("job-b", "owner-2", 30) is not None  # names are independent


def test_expired_lease_goes_to_another_owner_with_a_higher_token(backend: Backend) -> None:
    store = backend.store
    old = store.acquire("job-a", "owner-1", TTL)
    assert old is not None
    backend.expire("job-a")
    new = store.acquire("job-a", "owner-2", 30)
    assert new is not None and new.owner == "owner-2"
    assert new.token > old.token


def test_stale_owner_cannot_renew_or_release_the_new_holder(backend: Backend) -> None:
    """Reliability scenario 15: A expires, B acquires, A releases => B still holds it."""
    store = backend.store
    stale = store.acquire("job-a", "A", TTL)
    assert stale is not None
    backend.expire("job-a")
    assert store.renew(stale, TTL) is False  # expired, nobody holds it yet
    fresh = store.acquire("job-a", "B", 30)
    assert fresh is not None
    assert store.renew(stale, 30) is False
    assert store.release(stale) is False
    assert store.holder("job-a") == fresh
    # Same owner string, old token: still refused (fencing is by token, not only by owner).
    again = store.acquire("job-b", "A", TTL)
    assert again is not None
    backend.expire("job-b")
    newer = store.acquire("job-b", "A", 30)
    assert newer is not None and newer.token > again.token
    assert store.release(again) is False
    assert store.holder("job-b") == newer


def test_next_token_grows_and_does_not_disturb_the_holder(backend: Backend) -> None:
    store = backend.store
    lease = store.acquire("job-a", "owner-1", 30)
    assert lease is not None
    tokens = [store.next_token("job-a") for _ in range(3)]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3 and tokens[0] > lease.token
    assert store.holder("job-a") == lease
    assert store.renew(lease, 30) is True
    assert store.release(lease) is True
    after = store.acquire("job-a", "owner-2", 30)
    assert after is not None and after.token > tokens[-1]
    assert store.next_token("fresh-name") >= 1


def test_owner_of_a_hundred_characters(backend: Backend) -> None:
    """Owners like ``{63-char k8s hostname}:{pid}/{12 hex}`` fit (the SQL column is 100)."""
    owner = "h" * 63 + ":4194304/" + "a" * 12 + "x" * 16
    assert len(owner) == 100
    lease = backend.store.acquire("job-a", owner, 30)
    assert lease is not None and backend.store.holder("job-a") == lease
    assert backend.store.renew(lease, 30) and backend.store.release(lease)


def test_every_redis_lease_key_has_a_ttl(backend: Backend) -> None:
    if backend.kind != "redis":
        pytest.skip("Redis only")
    store = backend.store
    for index in range(5):
        lease = store.acquire(f"job-{index}", "owner", 30)
        assert lease is not None and store.renew(lease, 30)
    backend.signals.request("job-0", 1)
    leased = list(backend.redis.scan_iter(match=f"{keys.PREFIX}:lease:*"))
    cancels = list(backend.redis.scan_iter(match=f"{keys.PREFIX}:cancel:*"))
    assert len(leased) == 5 and len(cancels) == 1
    for key in leased + cancels:
        assert backend.redis.pttl(key) > 0, key
    assert backend.redis.get(keys.lease("job-0")) == b"1:owner"


def race(store: LeaseStore, name: str, contenders: int) -> list[Any]:
    """``contenders`` threads try to acquire ``name`` at the same moment; the winners."""
    barrier = threading.Barrier(contenders)
    wins: list[Any] = []

    def contend(index: int) -> None:
        barrier.wait()
        lease = store.acquire(name, f"owner-{index}", 30)
        if lease is not None:
            wins.append(lease)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return wins


def test_fifty_threads_race_and_exactly_one_wins(backend: Backend) -> None:
    store = backend.store
    wins = race(store, "fresh", 50)
    assert len(wins) == 1 and store.holder("fresh") == wins[0]
    assert store.acquire("expired", "earlier", TTL) is not None
    backend.expire("expired")
    wins = race(store, "expired", 50)
    assert len(wins) == 1 and store.holder("expired") == wins[0]


def test_cancel_signal_names_one_token(backend: Backend) -> None:
    signals = backend.signals
    assert signals.requested("job-a", 5) is False
    signals.request("job-a", 5)
    assert signals.requested("job-a", 5) is True
    assert signals.requested("job-a", 4) is False
    assert signals.requested("job-a", 6) is False
    assert signals.requested("job-b", 5) is False
    signals.request("job-a", 6)  # a newer request replaces the older one
    assert signals.requested("job-a", 6) is True
    assert signals.requested("job-a", 5) is False


def test_cancel_signal_expires(backend: Backend) -> None:
    signals = backend.signals
    signals.request("job-a", 7)
    if backend.kind == "memory":
        backend.expire("job-a")
    else:
        wait_for(lambda: not signals.requested("job-a", 7), timeout=5, what="signal expiry")
    assert signals.requested("job-a", 7) is False


def test_sql_cancel_signal_does_not_disturb_the_lease_of_the_same_job(backend: Backend) -> None:
    if backend.engine is None:
        pytest.skip("SQL only")
    lease = backend.store.acquire("job-a", "owner", 30)
    assert lease is not None
    backend.signals.request("job-a", lease.token)
    assert backend.store.holder("job-a") == lease
    assert backend.store.next_token("job-a") == lease.token + 1


def _process_race(url: str, barrier: Any, results: Any, index: int) -> None:
    engine = create_engine_for(url)
    store = SqlLeaseStore(engine, SYSTEM_CLOCK)
    barrier.wait(30)
    lease = store.acquire("contended", f"proc-{index}", 30)
    tokens = [store.next_token("counter") for _ in range(25)]
    results.put((lease.token if lease else None, tokens))
    engine.dispose()


def test_sqlite_processes_race_and_exactly_one_wins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'procs.sqlite'}"
    sql_engine(url).dispose()
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(6), context.Queue()
    procs = [context.Process(target=_process_race, args=(url, barrier, results, i))
             for i in range(6)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    winners = [token for token, _ in outcomes if token is not None]
    assert winners == [1]
    counters = sorted(token for _, tokens in outcomes for token in tokens)
    assert counters == list(range(1, 151))  # every next_token distinct, none lost


@pytest.mark.integration
def test_redis_batches_keep_each_calls_semantics_and_survive_a_lost_script_cache(
    redis_client: Any,
) -> None:
    """acquire_many / release_many / renew_many: one round trip, the single calls' meaning; after
    SCRIPT FLUSH (what a Redis restart does) NOSCRIPT means nothing ran, so the batch is re-sent."""
    store = RedisLeaseStore(redis_client)
    taken = store.acquire("held", "someone", 30)
    assert taken is not None
    got = store.acquire_many([("a", "o1", 30), ("held", "o2", 30), ("a", "o3", 30), ("b", "o4", 30)])
    assert [g.owner if g else None for g in got] == ["o1", None, None, "o4"]
    redis_client.script_flush()
    a, b = got[0], got[3]
    assert a is not None and b is not None
    assert store.renew_many([(a, 60), (b, 60)]) == [True, True]
    redis_client.script_flush()
    assert store.release_many([a, taken, a]) == [True, True, False]
    assert store.holder("a") is None and store.holder("held") is None
    assert store.holder("b") == b
    assert int(redis_client.get("agentcron:fence:a")) == 1  # the refused acquires took no token
