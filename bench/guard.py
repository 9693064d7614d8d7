"""Guard micro-benchmark: claim + lease + start + complete + release per run.

Runs a no-op sync agent through ``Guard.run_sync`` over N distinct windows, single-threaded, on
Redis leases + SQLite ledger and Redis leases + PostgreSQL ledger (and SQL leases + SQLite, the
embedded mode), with a plain Redis ``SET NX PX`` + ``DEL`` pair measured in the same run as the
floor. Reports runs/s, µs per run and the ratio to the floor, median of ``--repeat`` rounds.

    .venv/bin/python -m bench.guard --runs 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

from agentcron.clock import SystemClock
from agentcron.context import RunContext
from agentcron.guard import Guard
from agentcron.jobs import Job, compile_job
from agentcron.leases.cancel import RedisCancelSignals, SqlCancelSignals
from agentcron.leases.redis import RedisLeaseStore
from agentcron.leases.sql import SqlLeaseStore
from agentcron.ledger.store import Ledger
from agentcron.messages import RunMessage
from agentcron.settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC)


def noop(ctx: RunContext) -> None:
    return None


def floor(client: redis.Redis, runs: int) -> float:
    """Seconds for ``runs`` SET NX PX + DEL pairs."""
    began = time.perf_counter()
    for i in range(runs):
        client.set(f"bench:floor:{i}", "x", nx=True, px=60_000)
        client.delete(f"bench:floor:{i}")
    return time.perf_counter() - began


def guarded(ledger_url: str, leases: str, redis_url: str, runs: int, round_no: int) -> float:
    """Seconds for ``runs`` guarded no-op runs, each its own window."""
    clock = SystemClock()
    ledger = Ledger(ledger_url, clock, auto_migrate=True)
    if leases == "redis":
        client = redis.Redis.from_url(redis_url)
        store: Any = RedisLeaseStore(client)
        cancels: Any = RedisCancelSignals(client)
    else:
        store, cancels = SqlLeaseStore(ledger.engine, clock), SqlCancelSignals(ledger.engine, clock)
    guard = Guard(ledger, store, cancels, clock, worker_id="bench", settings=Settings())
    name = f"bench{round_no}"
    spec = compile_job(Job(name, agent=noop, schedule="1s", misfire_grace="36500d"))
    messages = []
    for i in range(runs):
        slot = START + timedelta(seconds=i)
        messages.append(RunMessage(name, f"{name}@{slot:%Y-%m-%dT%H:%M:%SZ}", slot, slot))
    began = time.perf_counter()
    for message in messages:
        guard.run_sync(spec, message)
    elapsed = time.perf_counter() - began
    ledger.close()
    return elapsed


def reset_postgres(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sqlalchemy.text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.repeat):
            client.flushdb()
            reset_postgres(args.postgres)
            sqlite_a = f"sqlite:///{Path(tmp) / f'r{round_no}.sqlite'}"
            sqlite_b = f"sqlite:///{Path(tmp) / f's{round_no}.sqlite'}"
            setups: dict[str, Callable[[], float]] = {
                "floor: SET NX PX + DEL": partial(floor, client, args.runs),
                "guard: Redis leases + SQLite": partial(
                    guarded, sqlite_a, "redis", args.redis, args.runs, round_no),
                "guard: Redis leases + PostgreSQL": partial(
                    guarded, args.postgres, "redis", args.redis, args.runs, round_no),
                "guard: SQL leases + SQLite (embedded)": partial(
                    guarded, sqlite_b, "sql", args.redis, args.runs, round_no),
            }  # fmt: skip
            for label, run in setups.items():
                results.setdefault(label, []).append(run())
    floor_s = statistics.median(results["floor: SET NX PX + DEL"])
    print(f"{'setup':40} {'runs/s':>10} {'µs/run':>10} {'x floor':>8}")
    for label, seconds in results.items():
        median = statistics.median(seconds)
        print(f"{label:40} {args.runs / median:10.0f} {median / args.runs * 1e6:10.0f} "
              f"{median / floor_s:8.1f}")


if __name__ == "__main__":
    main()
