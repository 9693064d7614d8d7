"""Guard overhead on sync agents: a no-op agent under agentcron vs a plain Celery no-op task.

    .venv/bin/python -m bench.sync_overhead [--runs 5000] [--repeats 3]

The peers of ``python -m bench sync`` live here too (their tasks must be importable by the
worker: ``-I bench.sync_overhead``): Celery + celery-once's ``QueueOnce`` (a Redis lock per
message taken at publish, ``graceful``, released after the run), ``QueueOnce`` plus a Redis
idempotency record per message (set NX before the body, marked done after it), and a 50 ms
agent (``time.sleep(0.05)``) under each.

Both run on ``celery worker -P prefork -c 2`` against Redis db 13; one producer publishes N
messages (batched, like beat) and we time until a Redis counter that each run increments reaches
N. agentcron's runs go through the full guard: ledger claim/start/complete in PostgreSQL
(``AGENTCRON_TEST_POSTGRES_URL``), a Redis lease, fenced completion. Target: >= 0.8x plain Celery.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.async_agents import (
    COUNTER,
    PLAIN_QUEUE,
    POSTGRES_URL,
    REDIS_URL,
    _celery,
    agentcron_enqueue,
    agentcron_env,
    agentcron_record,
    celery_enqueue,
    measure,
)
from workers.app import app

SCHEDULE = """
from agentcron import Job

JOBS = [Job("bench_noop", agent="bench.sync_overhead:noop_agent", schedule="* * * * *",
            overlap="allow", max_retries=1, misfire_grace=3650 * 86400),
        Job("bench_agent50", agent="bench.sync_overhead:agent50", schedule="* * * * *",
            overlap="allow", max_retries=1, misfire_grace=3650 * 86400)]
"""
AGENT_SECONDS = 0.05
ONCE_TIMEOUT = 3600
app.conf.ONCE = {"backend": "celery_once.backends.Redis",
                 "settings": {"url": REDIS_URL, "default_timeout": ONCE_TIMEOUT}}
_CLIENT: dict[str, Any] = {}


def _incr() -> None:
    _client().incr(COUNTER)


def noop_agent(ctx: Any) -> None:
    """The guarded no-op: only counts."""
    _incr()


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop_task() -> None:
    """The plain Celery no-op: only counts."""
    _incr()


def agent50(ctx: Any) -> None:
    """The guarded 50 ms agent (an LLM call's wait, shortened), then counts."""
    time.sleep(AGENT_SECONDS)
    _incr()


@app.task(name="bench.agent50")  # type: ignore[untyped-decorator]
def agent50_task() -> None:
    """The plain Celery 50 ms agent."""
    agent50(None)


def _once_tasks() -> dict[str, Any]:
    """celery-once's ``QueueOnce`` tasks (registered only when celery-once is installed)."""
    try:
        from celery_once import QueueOnce
    except ImportError:
        return {}
    once = {"graceful": True}

    @app.task(name="bench.once_noop", base=QueueOnce, once=once)  # type: ignore[untyped-decorator]
    def once_noop(window: str) -> None:
        _incr()

    @app.task(name="bench.once_agent50", base=QueueOnce, once=once)  # type: ignore[untyped-decorator]
    def once_agent50(window: str) -> None:
        agent50(None)

    @app.task(name="bench.once_idem_noop", base=QueueOnce, once=once)  # type: ignore[untyped-decorator]
    def once_idem_noop(window: str) -> None:
        client = _client()
        key = f"bench:idem:{window}"
        if not client.set(key, "running", nx=True, ex=ONCE_TIMEOUT):
            return  # recorded already: a repeated delivery
        _incr()
        client.set(key, "done", ex=ONCE_TIMEOUT)

    return {"noop": once_noop, "agent50": once_agent50, "idem": once_idem_noop}


def _client() -> Any:
    if "client" not in _CLIENT:
        _CLIENT["client"] = redis.Redis.from_url(REDIS_URL)
    return _CLIENT["client"]


ONCE_TASKS = _once_tasks()
FLOOR_TABLE = "bench_floor_runs"
_FLOOR: dict[str, Any] = {}


def _floor_stores() -> tuple[Any, Any, Any]:
    """This process's floor stores: the guard's lease store on its own client, and two
    autocommit PostgreSQL connections (claims without a WAL flush wait, completions with one,
    as the ledger commits them)."""
    if "leases" not in _FLOOR:
        import psycopg

        from agentcron.leases.redis import RedisLeaseStore

        dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        claims = psycopg.connect(dsn, autocommit=True)
        claims.execute("SET synchronous_commit = off")
        _FLOOR.update(leases=RedisLeaseStore(redis.Redis.from_url(REDIS_URL)), claims=claims,
                      completions=psycopg.connect(dsn, autocommit=True))  # fmt: skip
    return _FLOOR["leases"], _FLOOR["claims"], _FLOOR["completions"]


def floor_setup() -> None:
    """The floor's table (a window key, its token and state), emptied."""
    import psycopg

    dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (window_key text PRIMARY KEY, "
                     "token bigint NOT NULL, state text NOT NULL, updated_at timestamptz)")
        conn.execute(f"TRUNCATE {FLOOR_TABLE}")


def _floor_run(window: str, body: Any, claim: bool = True, release: bool = True) -> None:
    """The guard's four round trips around ``body``, with none of its logic: lease acquire
    (the same Lua script), a claim and a fenced completion (one statement each, the claim's
    commit not waiting for the WAL flush, the completion's waiting), the lease's release.

    Without ``claim`` or ``release``: the floor of a design that leaves out that round trip
    (nothing in the ledger before the agent runs; the lease left to expire), so a choice between
    designs can be made on measured figures. Without a claim the completion inserts the row."""
    leases, claims, completions = _floor_stores()
    lease = leases.acquire(f"floor:{window}", f"floor.{window}", 60.0)
    if lease is None:
        return
    if claim:
        claims.execute(f"INSERT INTO {FLOOR_TABLE} VALUES (%s, %s, 'running', now()) ON CONFLICT "
                       "(window_key) DO UPDATE SET token = excluded.token, state = 'running', "
                       f"updated_at = now() WHERE {FLOOR_TABLE}.state = 'running'",
                       (window, lease.token))  # fmt: skip
    body()
    if claim:
        completions.execute(f"UPDATE {FLOOR_TABLE} SET state = 'succeeded', updated_at = now() "
                            "WHERE window_key = %s AND token = %s", (window, lease.token))  # fmt: skip
    else:
        completions.execute(f"INSERT INTO {FLOOR_TABLE} VALUES (%s, %s, 'succeeded', now()) ON "
                            "CONFLICT (window_key) DO UPDATE SET token = excluded.token, "
                            f"state = 'succeeded', updated_at = now() WHERE {FLOOR_TABLE}.token "
                            "<= excluded.token", (window, lease.token))  # fmt: skip
    if release:
        leases.release(lease)


@app.task(name="bench.floor_noop")  # type: ignore[untyped-decorator]
def floor_noop(window: str) -> None:
    """The floor of a guarded no-op: its round trips, no logic."""
    _floor_run(window, _incr)


@app.task(name="bench.floor_agent50")  # type: ignore[untyped-decorator]
def floor_agent50(window: str) -> None:
    """The floor of a guarded 50 ms agent."""
    _floor_run(window, lambda: agent50(None))


@app.task(name="bench.floor3_noop")  # type: ignore[untyped-decorator]
def floor3_noop(window: str) -> None:
    """The floor of a no-op with no ledger write before the agent (3 round trips)."""
    _floor_run(window, _incr, claim=False)


@app.task(name="bench.floor3_agent50")  # type: ignore[untyped-decorator]
def floor3_agent50(window: str) -> None:
    """The floor of a 50 ms agent with no ledger write before the agent (3 round trips)."""
    _floor_run(window, lambda: agent50(None), claim=False)


@app.task(name="bench.floor2_noop")  # type: ignore[untyped-decorator]
def floor2_noop(window: str) -> None:
    """The floor of a no-op with only the lease acquire and the durable completion."""
    _floor_run(window, _incr, claim=False, release=False)


FLOOR_TASKS = {"noop": floor_noop, "agent50": floor_agent50, "noop3": floor3_noop,
               "agent50-3": floor3_agent50, "noop2": floor2_noop}  # fmt: skip


def floor_enqueue(kind: str, n: int, trial: int) -> None:
    """Publish ``n`` floor tasks of ``kind`` (a key of ``FLOOR_TASKS``; distinct windows)."""
    task = FLOOR_TASKS[kind]
    batch = time.monotonic_ns()  # new windows every call: each claim inserts, as a guarded run's
    with app.producer_or_acquire() as producer, producer.batch(1000):
        for i in range(n):
            task.apply_async(kwargs={"window": f"{batch}:{trial}:{i}"}, queue=PLAIN_QUEUE,
                             producer=producer, retry=False)  # fmt: skip


def once_enqueue(kind: str, n: int, trial: int) -> None:
    """Publish ``n`` ``QueueOnce`` tasks (one lock each, taken at publish), batched."""
    task = ONCE_TASKS[kind]
    with app.producer_or_acquire() as producer, producer.batch(1000):
        for i in range(n):
            task.apply_async(kwargs={"window": f"{trial}:{i}"}, queue=PLAIN_QUEUE,
                             producer=producer, retry=False)  # fmt: skip


def main() -> None:
    """Both systems side by side; medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children of each")
    parser.add_argument("--recorded", action="store_true",
                        help="also the guarded run with its windows recorded first, as beat does")
    options = parser.parse_args()
    from agentcron.ledger.store import Ledger

    Ledger(POSTGRES_URL).upgrade()
    schedule = Path(tempfile.mkdtemp(prefix="bench-")) / "beat_schedule.py"
    schedule.write_text(SCHEDULE)
    c = options.concurrency
    prefork = ("-P", "prefork", "-c", str(c), "-I", "bench.sync_overhead")
    cpu: dict[str, dict[str, float]] = {}
    name = f"agentcron guarded no-op, prefork -c {c}"
    guarded = measure(_celery("-Q", "agentcron.sync", *prefork), agentcron_env(schedule),
                      lambda k, t: agentcron_enqueue("bench_noop", k, t, sync=True),
                      options.runs, options.repeats, cpu=cpu.setdefault(name, {}))
    rows = [(name, guarded)]
    if options.recorded:
        name = f"  the same, windows recorded first (beat), -c {c}"
        recorded = measure(_celery("-Q", "agentcron.sync", *prefork), agentcron_env(schedule),
                           lambda k, t: agentcron_enqueue("bench_noop", k, t, sync=True),
                           options.runs, options.repeats,
                           prepare=lambda k, t: agentcron_record("bench_noop", k, t),
                           cpu=cpu.setdefault(name, {}))  # fmt: skip
        rows.append((name, recorded))
    name = f"plain Celery no-op, prefork -c {c}"
    plain = measure(_celery("-Q", PLAIN_QUEUE, *prefork), {},
                    lambda k, t: celery_enqueue(k, t, "bench.noop"), options.runs, options.repeats,
                    cpu=cpu.setdefault(name, {}))  # fmt: skip
    rows.append((name, plain))
    for name, rates in rows:
        trials = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{name:<40} N={options.runs} median {statistics.median(rates):7.0f} runs/s "
              f"({trials})")
    print("CPU ms per run (all trials):")
    for name, groups in cpu.items():
        split = ", ".join(f"{group} {ms:.2f}" for group, ms in groups.items())
        print(f"  {name.strip():<40} total {sum(groups.values()):.2f}: {split}")
    print(f"agentcron / plain Celery: {statistics.median(guarded) / statistics.median(plain):.2f}x")


if __name__ == "__main__":
    main()
