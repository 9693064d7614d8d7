"""The guard on the real stores: Redis leases + PostgreSQL ledger, SQL leases + SQLite ledger.

50 concurrent deliveries of one window (threads, and real processes) end with exactly one
success; the agent's side effect happens once; nothing is lost; no lease key is left without a TTL.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from agentcron.clock import SystemClock
from agentcron.context import RunContext
from agentcron.guard import Guard, Outcome
from agentcron.jobs import Job, compile_job
from agentcron.leases.cancel import RedisCancelSignals, SqlCancelSignals
from agentcron.leases.redis import RedisLeaseStore
from agentcron.leases.sql import SqlLeaseStore
from agentcron.ledger.records import RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import RunMessage
from agentcron.settings import Settings
from tests.services import reset_postgres, wait_for

pytestmark = pytest.mark.integration
SLOT = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)
MESSAGE = RunMessage("race", "race@2026-03-17T06:00:00Z", SLOT, SLOT)


def side_effect_agent(ctx: RunContext) -> dict[str, str]:
    """Writes one side-effect row per execution into the file named by the config."""
    with open(str(ctx.config["effects"]), "a") as handle:
        handle.write(ctx.window_key + "\n")
    return {"window": ctx.window_key}


def make_guard(kind: str, db_url: str, redis_url: str, worker: str) -> Guard:
    clock = SystemClock()
    ledger = Ledger(db_url, clock, auto_migrate=kind == "sql")
    if kind == "redis":
        client = redis.Redis.from_url(redis_url)
        leases: Any = RedisLeaseStore(client)
        cancels: Any = RedisCancelSignals(client)
    else:
        leases = SqlLeaseStore(ledger.engine, clock)
        cancels = SqlCancelSignals(ledger.engine, clock)
    return Guard(ledger, leases, cancels, clock, worker_id=worker, settings=Settings())


def job_spec(effects: Path) -> Any:
    return compile_job(Job("race", agent=side_effect_agent, schedule="@daily",
                           config={"effects": str(effects)}, misfire_grace="3650d", lease_ttl=5))


@pytest.fixture(params=["redis", "sql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(lease kind, ledger URL, redis URL): Redis leases over PostgreSQL, SQL leases over SQLite."""
    if request.param == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        redis.Redis.from_url(redis_url).flushdb()
        postgres: str = request.getfixturevalue("postgres_url")
        reset_postgres(postgres)
        Ledger(postgres, auto_migrate=True).close()
        yield "redis", postgres, redis_url
    else:
        yield "sql", f"sqlite:///{tmp_path / 'ledger.sqlite'}", ""


def check_oracle(db_url: str, effects: Path, redis_url: str) -> None:
    ledger = Ledger(db_url, auto_migrate=False)
    rows = ledger.list_runs("race")
    assert [r.state for r in rows] == [RunState.SUCCEEDED]
    assert effects.read_text().splitlines() == [MESSAGE.window_key]
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter("agentcron:lease:*"):
            assert client.pttl(key) > 0, key


def test_fifty_threads_deliver_one_window(stores: tuple[str, str, str], tmp_path: Path) -> None:
    kind, db_url, redis_url = stores
    effects = tmp_path / "effects.txt"
    spec = job_spec(effects)
    guards = [make_guard(kind, db_url, redis_url, f"w{i}") for i in range(5)]
    barrier = threading.Barrier(50)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def deliver(index: int) -> None:
        barrier.wait()
        outcome = guards[index % 5].run_sync(spec, MESSAGE)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 50
    details = sorted({o.detail for o in outcomes})
    assert [o.state for o in outcomes].count(RunState.SUCCEEDED) == 1, details
    assert all(o.duplicate or o.state is RunState.SUCCEEDED for o in outcomes)
    check_oracle(db_url, effects, redis_url)


def _process(kind: str, db_url: str, redis_url: str, effects: str, barrier: Any, out: Any) -> None:
    guard = make_guard(kind, db_url, redis_url, f"p{multiprocessing.current_process().pid}")
    barrier.wait()
    outcome = guard.run_sync(job_spec(Path(effects)), MESSAGE)
    out.put((outcome.state.value if outcome.state else None, outcome.duplicate))


def test_processes_deliver_one_window(stores: tuple[str, str, str], tmp_path: Path) -> None:
    kind, db_url, redis_url = stores
    effects = tmp_path / "effects.txt"
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(8), context.Queue()
    procs = [context.Process(target=_process, args=(kind, db_url, redis_url, str(effects),
                                                    barrier, out)) for _ in range(8)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert [state for state, _ in results].count("succeeded") == 1
    assert all(dup or state == "succeeded" for state, dup in results)
    check_oracle(db_url, effects, redis_url)


def test_leaked_lease_blocks_the_next_window_at_most_its_ttl(redis_url: str, tmp_path: Path) -> None:
    """Scenario 13: a crashed holder's lease is gone within its TTL; the next window then runs."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    leases = RedisLeaseStore(client)
    leaked = leases.acquire("race", "crashed-worker", 1.0)
    assert leaked is not None and 0 < client.pttl("agentcron:lease:race") <= 1000
    guard = make_guard("redis", f"sqlite:///{tmp_path / 'l.sqlite'}", redis_url, "w")
    guard.ledger.upgrade()
    spec = job_spec(tmp_path / "effects.txt")
    clock = SystemClock()
    started = clock.monotonic()
    first = guard.run_sync(spec, MESSAGE)
    assert first.state is RunState.SKIPPED  # the leaked lease still looks live
    deadline = started + 5
    nxt = RunMessage("race", "race@2026-03-18T06:00:00Z", datetime(2026, 3, 18, 6, tzinfo=UTC),
                     datetime(2026, 3, 18, 6, tzinfo=UTC))
    wait_for(lambda: not client.exists("agentcron:lease:race"), timeout=deadline - started,
             interval=0.02, what="the leaked lease to expire")
    assert clock.monotonic() - started < 2.0
    assert guard.run_sync(spec, nxt).state is RunState.SUCCEEDED
