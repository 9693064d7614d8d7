"""Async agents: a 200 ms I/O agent, runs/s end to end, agentcron vs the anchors in ONE run.

    .venv/bin/python -m bench.async_agents [--runs 2000] [--repeats 3] [--rss 10000]

Each system gets the same agent (``await asyncio.sleep(0.2)``, then INCR a Redis counter); we
enqueue N runs on a warm worker and time from the first enqueue until the counter reaches N.

- agentcron: ONE worker process with the asyncio pool (``-c 1000``), guards on: every run is
  claimed in the PostgreSQL ledger, leased in Redis, completed with a fenced update, released.
  Messages are published the way beat publishes them on this broker (``open_publisher``:
  pipelined LPUSHes on Redis; ``AGENTCRON_BENCH_PUBLISHER=celery``: Celery's ``send_task``).
- Celery prefork, 2 processes, ``asyncio.run()`` inside each task.
- Celery threads pool, 100 threads, ``asyncio.run()`` inside each task.
- arq, 1 process, ``max_jobs=1000`` (``bench/arq_anchor.py``; ``--arq-bin`` runs it from arq's
  own environment, with the redis-py it supports).

``--rss N``: peak RSS (VmHWM) of one agentcron async worker holding N guarded runs in flight.
Redis db 13 and the PostgreSQL database of ``AGENTCRON_TEST_POSTGRES_URL`` are used (flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

REDIS_URL = os.environ.get("AGENTCRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get("AGENTCRON_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test_workers")
os.environ.setdefault("AGENTCRON_BROKER_URL", REDIS_URL)

from workers.app import app  # noqa: E402
from workers.pool import defer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COUNTER = "bench:done"
STARTED = "bench:started"
PLAIN_QUEUE = "bench.plain"
SCHEDULE = """
from agentcron import Job

GRACE = 3650 * 86400  # the benchmark's windows are past minutes: never a misfire

JOBS = [
    Job("bench_async", agent="bench.async_agents:guarded_agent", schedule="* * * * *",
        overlap="allow", max_retries=1, misfire_grace=GRACE, config={"seconds": 0.2}),
    Job("bench_hold", agent="bench.async_agents:guarded_agent", schedule="* * * * *",
        overlap="allow", max_retries=1, misfire_grace=GRACE,
        config={"seconds": 900, "count_start": True}),
]
"""
_CLIENTS: dict[int, Any] = {}


def _aredis() -> Any:
    import redis.asyncio

    loop = id(asyncio.get_running_loop())
    if loop not in _CLIENTS:
        # no timeout: 10,000 held runs each INCR once; on a loaded machine some waited more than
        # the pool's default 20 s for one of the 100 connections and failed, never counted
        pool = redis.asyncio.BlockingConnectionPool.from_url(REDIS_URL, max_connections=100,
                                                             timeout=None)  # fmt: skip
        _CLIENTS[loop] = redis.asyncio.Redis(connection_pool=pool)
    return _CLIENTS[loop]


async def guarded_agent(ctx: Any) -> None:
    """The agentcron agent: sleep (the LLM call), then count (one INCR, as arq's agent does;
    the runs held for the RSS reading also count their start)."""
    client = _aredis()
    if ctx.config.get("count_start"):
        await client.incr(STARTED)
    await asyncio.sleep(float(ctx.config["seconds"]))
    await client.incr(COUNTER)


async def _sleep_and_count() -> None:
    await asyncio.sleep(0.2)
    await _aredis().incr(COUNTER)


@app.task(name="bench.pool_only", runs_on_loop=True)  # type: ignore[untyped-decorator]
def pool_only_task() -> Any:
    """The same agent on agentcron's pool without the guard: the pool's own cost."""
    return defer(_sleep_and_count())


async def _sleep_200ms() -> None:
    await asyncio.sleep(0.2)


@app.task(name="bench.asyncio_run")  # type: ignore[untyped-decorator]
def asyncio_run_task() -> None:
    """The anchors' pattern: a fresh event loop per task."""
    asyncio.run(_sleep_200ms())
    redis.Redis.from_url(REDIS_URL).incr(COUNTER)


def _store() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


def _counter(key: str = COUNTER) -> int:
    return int(_store().get(key) or 0)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(Path(tempfile.gettempdir()) / "bench-worker.log", "ab")  # noqa: SIM115
    return subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _celery(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "workers.app", "worker", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-l", "WARNING", *args]


def _messages(job: str, n: int, trial: int) -> list[Any]:
    from agentcron.messages import RunMessage
    from agentcron.windows import window_key

    # Past minutes of an every-minute job, as beat publishes them (workers admit a "schedule"
    # message whose slot is a fire time of its job; a "manual" one must be recorded first).
    base = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=(trial + 10) * 100_000)
    starts = [base + timedelta(minutes=i) for i in range(n)]
    return [RunMessage(job, window_key(job, s), s, s) for s in starts]


PUBLISHER = os.environ.get("AGENTCRON_BENCH_PUBLISHER", "beat")
"""``beat`` (default): the publisher beat opens for this broker (``open_publisher``: pipelined
LPUSHes of ready-made envelopes on Redis); ``celery``: Celery's ``send_task`` per message
(``CeleryPublisher``, ~0.3-0.6 ms a message here: what this harness used before 2026-12-01 07:20)."""
_PUBLISHERS: dict[str, Any] = {}


def _publisher() -> Any:
    if PUBLISHER not in _PUBLISHERS:
        from agentcron.beat.factory import open_publisher
        from agentcron.emission.publisher import CeleryPublisher
        from agentcron.settings import Settings

        _PUBLISHERS[PUBLISHER] = (CeleryPublisher(app) if PUBLISHER == "celery"
                                  else open_publisher(app, Settings.from_env()))  # fmt: skip
    return _PUBLISHERS[PUBLISHER]


def agentcron_enqueue(job: str, n: int, trial: int, sync: bool = False) -> None:
    """Publish ``n`` windows of ``job`` the way beat does (``AGENTCRON_BENCH_PUBLISHER``)."""
    from agentcron.emission.publisher import Outgoing
    from agentcron.messages import ASYNC_TASK, SYNC_TASK

    task, queue = (SYNC_TASK, "agentcron.sync") if sync else (ASYNC_TASK, "agentcron.async")
    _publisher().publish([Outgoing(task, queue, m) for m in _messages(job, n, trial)])


def agentcron_record(job: str, n: int, trial: int) -> None:
    """Record the windows :func:`agentcron_enqueue` will publish as 'scheduled', as beat does
    before it publishes (untimed: that is the beat's work, measured in bench.beat_emission)."""
    from agentcron.ledger.records import NewWindow
    from agentcron.ledger.store import Ledger

    ledger = Ledger(POSTGRES_URL)
    ledger.record_scheduled([NewWindow(m.job, m.window_start, m.window_key, m.slot, m.trigger)
                             for m in _messages(job, n, trial)])  # fmt: skip
    ledger.close()


def celery_enqueue(n: int, _trial: int, task: str = "bench.asyncio_run") -> None:
    """Publish ``n`` plain Celery tasks, batched like agentcron's."""
    with app.producer_or_acquire() as producer, producer.batch(1000):
        for _ in range(n):
            app.send_task(task, queue=PLAIN_QUEUE, producer=producer, retry=False)


def arq_enqueue(n: int, _trial: int) -> None:
    """Enqueue ``n`` arq jobs concurrently, arq's own way."""
    from arq import create_pool
    from arq.connections import RedisSettings

    async def go() -> None:
        pool = await create_pool(RedisSettings.from_dsn(REDIS_URL))
        for first in range(0, n, 50):
            await asyncio.gather(*(pool.enqueue_job("arq_agent")
                                   for _ in range(first, min(n, first + 50))))
        await pool.aclose()

    asyncio.run(go())


def _clean_ledger() -> None:
    engine = sqlalchemy.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs WHERE job LIKE 'bench_%'"))
    engine.dispose()


def agentcron_env(schedule: Path, concurrency: int = 0) -> dict[str, str]:
    """A worker's environment: Redis broker and leases, PostgreSQL ledger (async if concurrency)."""
    env = {"AGENTCRON_BROKER_URL": REDIS_URL, "AGENTCRON_DATABASE_URL": POSTGRES_URL,
           "AGENTCRON_SCHEDULE_PATH": str(schedule), "AGENTCRON_SHUTDOWN_TIMEOUT": "2"}
    if concurrency:
        env |= {"AGENTCRON_WORKER_POOL": "async", "AGENTCRON_ASYNC_CONCURRENCY": str(concurrency)}
    return env


def measure(
    argv: list[str], env: dict[str, str], enqueue: Callable[[int, int], None], n: int,
    repeats: int, prepare: Callable[[int, int], None] | None = None,
    cpu: dict[str, float] | None = None,
) -> list[float]:  # fmt: skip
    """Runs/s of one system over ``repeats`` trials of ``n`` runs, on one warm worker
    (``prepare(n, trial)``, if given, runs before each trial's clock starts). With ``cpu``,
    fills it with CPU milliseconds per run by process group over all trials (bench.cpu)."""
    from bench.cpu import CpuSplit

    store = _store()
    store.flushdb()
    _clean_ledger()
    proc = _start(argv, env)
    try:
        enqueue(1, -1)
        _wait(lambda: _counter() >= 1, 60, "warm-up run")
        split = CpuSplit.around(proc.pid)
        rates = []
        for trial in range(repeats):
            store.set(COUNTER, 0)
            if prepare is not None:
                prepare(n, trial)
            before = split.sample()
            began = time.monotonic()
            enqueue(n, trial)
            _wait(lambda: _counter() >= n, 600, f"{n} runs")
            rates.append(n / (time.monotonic() - began))
            if cpu is not None:
                for group, seconds in split.since(before).items():
                    cpu[group] = cpu.get(group, 0.0) + seconds * 1000 / (n * repeats)
            _clean_ledger()
        return rates
    finally:
        _stop(proc)


async def _hold_and_count() -> None:
    client = _aredis()
    await client.incr(STARTED)
    await asyncio.sleep(900)
    await client.incr(COUNTER)


@app.task(name="bench.pool_hold", runs_on_loop=True)  # type: ignore[untyped-decorator]
def pool_hold_task() -> Any:
    """A run that stays in flight on the pool, without the guard."""
    return defer(_hold_and_count())


def peak_rss(schedule: Path, n: int, guarded: bool = True,
             extra_env: dict[str, str] | None = None) -> tuple[float, float]:
    """(peak RSS MB, seconds to get ``n`` runs in flight) of one agentcron async worker
    (``extra_env``: more environment for the worker, e.g. ``MALLOC_ARENA_MAX``)."""
    _store().flushdb()
    _clean_ledger()
    if guarded:
        argv = _celery("-Q", "agentcron.async", "-n", "rss@bench")
        warm: Callable[[int, int], None] = partial(agentcron_enqueue, "bench_async")
        hold: Callable[[int, int], None] = partial(agentcron_enqueue, "bench_hold")
    else:
        argv = _celery("-Q", PLAIN_QUEUE, "-I", "bench.async_agents", "-n", "rss@bench")
        warm = partial(celery_enqueue, task="bench.pool_only")
        hold = partial(celery_enqueue, task="bench.pool_hold")
    proc = _start(argv, agentcron_env(schedule, n) | (extra_env or {}))
    try:
        warm(1, -1)
        _wait(lambda: _counter() >= 1, 60, "warm-up run")
        began = time.monotonic()
        hold(n, 0)
        _wait(lambda: _counter(STARTED) >= n, 600, f"{n} in flight")
        elapsed = time.monotonic() - began
        assert _counter() == 1, "a held run finished early: not all were in flight at once"
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        return int(hwm.split()[1]) / 1024, elapsed
    finally:
        proc.kill()
        proc.wait()
        _clean_ledger()
        _store().flushdb()


def _arq_version(arq_bin: str) -> str:
    """``arq X, redis-py Y`` of the environment that ``arq_bin`` belongs to."""
    python = str(Path(arq_bin).parent / "python")
    code = ("import importlib.metadata as m; "
            "print(f\"arq {m.version('arq')}, redis-py {m.version('redis')}\")")
    return subprocess.run([python, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def main() -> None:
    """Run every system side by side and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--prefork-runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss", type=int, default=10000, help="runs in flight (0: skip)")
    parser.add_argument("--only", default="", help="run only systems whose name contains this")
    parser.add_argument("--arq-bin", action="append", default=[],
                        help="an arq command (repeatable; e.g. from a venv with arq's own "
                             "redis-py); default: this environment's")
    options = parser.parse_args()
    from agentcron.ledger.store import Ledger

    Ledger(POSTGRES_URL).upgrade()
    schedule = Path(tempfile.mkdtemp(prefix="bench-")) / "beat_schedule.py"
    schedule.write_text(SCHEDULE)
    n, repeats = options.runs, options.repeats
    systems: list[tuple[str, list[str], dict[str, str], Callable[[int, int], None], int]] = [
        ("agentcron, 1 async worker process, guards on",
         _celery("-Q", "agentcron.async", "-n", "bench@async"), agentcron_env(schedule, 1000),
         lambda k, t: agentcron_enqueue("bench_async", k, t), n),
        ("agentcron pool alone (guards off), 1 process",
         _celery("-Q", PLAIN_QUEUE, "-I", "bench.async_agents", "-c", "1000"),
         {"AGENTCRON_WORKER_POOL": "async"},
         lambda k, t: celery_enqueue(k, t, "bench.pool_only"), n),
        ("Celery prefork -c 2, asyncio.run per task",
         _celery("-Q", PLAIN_QUEUE, "-I", "bench.async_agents", "-P", "prefork", "-c", "2"),
         {}, celery_enqueue, options.prefork_runs),
        ("Celery threads -c 100, asyncio.run per task",
         _celery("-Q", PLAIN_QUEUE, "-I", "bench.async_agents", "-P", "threads", "-c", "100"),
         {}, celery_enqueue, n),
    ]  # fmt: skip
    for arq_bin in options.arq_bin or [str(BIN / "arq")]:
        label = "" if not options.arq_bin else f" ({_arq_version(arq_bin)})"
        systems.append((f"arq 1 process, max_jobs=1000{label}",
                        [arq_bin, "bench.arq_anchor.ArqSettings"], {}, arq_enqueue, n))
    medians: dict[str, float] = {}
    for name, argv, env, enqueue, count in systems:
        if options.only not in name:
            continue
        rates = measure(argv, env, enqueue, count, repeats)
        medians[name] = statistics.median(rates)
        trials = ", ".join(f"{r:.1f}" for r in rates)
        print(f"{name:<48} N={count:<5} median {medians[name]:8.1f} runs/s  ({trials})",
              flush=True)
    ours = medians.get(systems[0][0])
    for name, rate in list(medians.items())[1:]:
        if ours:
            print(f"agentcron / {name}: {ours / rate:.2f}x")
    for guarded in (True, False):
        if options.rss:
            mb, seconds = peak_rss(schedule, options.rss, guarded)
            what = "guarded runs" if guarded else "runs on the pool alone (guards off)"
            print(f"agentcron async worker, {options.rss} {what} in flight: peak RSS {mb:.0f} MB "
                  f"(all in flight after {seconds:.1f}s)", flush=True)


if __name__ == "__main__":
    main()
