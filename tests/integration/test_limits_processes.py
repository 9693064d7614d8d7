"""Fleet-wide limits and budgets across real ``celery`` worker processes (Redis broker and
limits, PostgreSQL ledger). The agents record their own wall-clock timestamps in Redis."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import ASYNC_TASK, SYNC_TASK, RunMessage
from agentcron.windows import window_key
from tests.faults.harness import children_of
from tests.integration.workers_support import celery_worker, use_broker, wait_ready, worker_env
from tests.services import wait_for
from workers.app import app

pytestmark = pytest.mark.integration

AGENTS = '''
import os, time
import redis

def store():
    return redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"])

def held(ctx):
    start = time.time()
    time.sleep(float(ctx.config.get("seconds", 0.3)))
    store().rpush("spans", f"{start}:{time.time()}")
    return "ok"

def called(ctx):
    for _ in range(int(ctx.config.get("calls", 1))):
        with ctx.limit("rpm"):
            store().rpush("calls", time.time())
    return "ok"

def spends(ctx):
    store().rpush("spent", ctx.window_key)
    ctx.usage("m", input_tokens=100, output_tokens=20, cost_usd=0.3)
    time.sleep(0.1)
    return "ok"

async def aheld(ctx):
    import asyncio
    start = time.time()
    await asyncio.sleep(0.3)
    store().rpush("spans", f"{start}:{time.time()}")
    async with ctx.limit("rpm", tokens=5):
        store().rpush("calls", time.time())
    return "ok"

def hangs(ctx):
    store().rpush("hung", os.getpid())
    time.sleep(600)
'''

SCHEDULE = '''
from agentcron import Job, Limit

LIMITS = [Limit("two", concurrency=2, ttl=3), Limit("rpm", per_minute=4, period=2.0),
          Limit("solo", concurrency=1, ttl=3)]
JOBS = [
    Job("held", agent="limit_agents:held", schedule="@yearly", overlap="allow", limits=["two"]),
    Job("called", agent="limit_agents:called", schedule="@yearly", overlap="allow",
        config={"calls": 3}),
    Job("spender", agent="limit_agents:spends", schedule="@yearly", overlap="buffer_all",
        budget={"cost_usd": 1.0, "per": "day"}),
    Job("hanger", agent="limit_agents:hangs", schedule="@yearly", overlap="allow",
        limits=["solo"], lease_ttl=3),
    Job("async_held", agent="limit_agents:aheld", schedule="@yearly", overlap="allow",
        limits=["two"]),
    Job("slow_solo", agent="limit_agents:held", schedule="@yearly", overlap="allow",
        limits=["solo"], config={"seconds": 4}),
]
'''
START = datetime(2026, 1, 1, tzinfo=UTC)


def message(job: str, n: int) -> RunMessage:
    start = START + timedelta(hours=n)
    return RunMessage(job, window_key(job, start), start, start, trigger="manual")




class Fleet:
    def __init__(self, root: Path, redis: Any, ledger: Ledger, env: dict[str, str]) -> None:
        self.root, self.redis, self.ledger, self.env = root, redis, ledger, env
        self.stack = ExitStack()
        self.procs: list[Any] = []

    def start(self, count: int) -> None:
        names = [f"w{len(self.procs) + n}" for n in range(count)]
        for name in names:
            self.procs.append(self.stack.enter_context(celery_worker(
                "-Q", "agentcron.sync", "-c", "2", "-n", f"{name}@limits", env=self.env,
                log=self.root / f"{name}.log")))  # fmt: skip
        for name in names:
            wait_ready(f"{name}@limits", timeout=60)

    def start_async(self) -> None:
        name = f"w{len(self.procs)}"
        self.procs.append(self.stack.enter_context(celery_worker(
            "-Q", "agentcron.async", "-n", f"{name}@limits",
            env={**self.env, "AGENTCRON_WORKER_POOL": "async"}, log=self.root / f"{name}.log")))
        wait_ready(f"{name}@limits", timeout=60)

    def publish(self, msg: RunMessage, asynchronous: bool = False) -> None:
        """Record the manual window first, as trigger does (workers refuse unrecorded ones)."""
        self.ledger.record_scheduled([NewWindow(msg.job, msg.window_start, msg.window_key,
                                                msg.slot, msg.trigger)])  # fmt: skip
        task, queue = (ASYNC_TASK, "agentcron.async") if asynchronous else (SYNC_TASK, "agentcron.sync")
        app.send_task(task, kwargs=msg.to_kwargs(), queue=queue)

    def states(self, msgs: list[RunMessage]) -> list[RunState | None]:
        found = self.ledger.get_many([m.window_key for m in msgs])
        return [found[m.window_key].state if m.window_key in found else None for m in msgs]

    def wait_terminal(self, msgs: list[RunMessage], timeout: float = 90) -> list[RunState | None]:
        wait_for(lambda: all(s is not None and s.terminal for s in self.states(msgs)),
                 timeout=timeout, what=f"terminal states (now {self.states(msgs)})")
        return self.states(msgs)


@pytest.fixture
def fleet(tmp_path: Path, redis_client: Any, redis_url: str, postgres_url: str) -> Iterator[Fleet]:
    (tmp_path / "limit_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs"))
        conn.execute(sqlalchemy.text("DELETE FROM run_usage"))
        conn.execute(sqlalchemy.text("DELETE FROM budget_alerts"))
    use_broker(redis_url)
    env = worker_env(AGENTCRON_DATABASE_URL=postgres_url,
                     AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                     AGENTCRON_DATA_DIR=str(tmp_path / "data"), AGENTCRON_SHUTDOWN_TIMEOUT="10",
                     AGENTCRON_LIMIT_WAIT="2")
    fleet = Fleet(tmp_path, redis_client, ledger, env)
    with fleet.stack:
        yield fleet
    ledger.close()


def spans(fleet: Fleet) -> list[tuple[float, float]]:
    out = []
    for raw in fleet.redis.lrange("spans", 0, -1):
        start, end = raw.decode().split(":")
        out.append((float(start), float(end)))
    return out


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_three_workers_never_hold_a_limit_of_two_more_than_twice(fleet: Fleet) -> None:
    fleet.start(3)
    msgs = [message("held", n) for n in range(12)]
    for msg in msgs:
        fleet.publish(msg)
    assert fleet.wait_terminal(msgs, timeout=120) == [RunState.SUCCEEDED] * 12
    found = spans(fleet)
    assert len(found) == 12
    assert most_at_once(found) == 2  # six prefork children were free; two ran at a time
    assert fleet.redis.zcard("agentcron:limit:two:slots") == 0  # every slot given back


def within_any_span(times: list[float], span: float) -> int:
    """The most of ``times`` that any half-open span of ``span`` seconds holds."""
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < first + span) for i, first in enumerate(times)),
               default=0)


def test_a_per_minute_limit_holds_in_every_span_and_budgets_count_exactly(fleet: Fleet) -> None:
    fleet.start(2)
    calls = [message("called", n) for n in range(4)]  # 12 calls, 4 per 2 s window
    spend = [message("spender", n) for n in range(8)]  # 0.3 each, 1.0 per day: 4 run
    grants: dict[bytes, float] = {}  # every grant, as Redis timed it (each stays >= 2 s)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            for member, score in fleet.redis.zrange("agentcron:limit:rpm:rate", 0, -1,
                                                    withscores=True):
                grants[member] = score / 1000

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for msg in [*calls, *spend]:
        fleet.publish(msg)
    assert fleet.wait_terminal(calls, timeout=120) == [RunState.SUCCEEDED] * 4
    time.sleep(0.5)
    done.set()
    watcher.join()
    assert fleet.redis.llen("calls") == 12 and len(grants) == 12
    assert within_any_span(list(grants.values()), 2.0) == 4  # the limit, reached, never passed
    # the agents' own stamps (taken just after each grant) agree, give or take their delay
    stamps = [float(t) for t in fleet.redis.lrange("calls", 0, -1)]
    assert within_any_span(stamps, 2.0 - 0.25) <= 4
    states = fleet.wait_terminal(spend, timeout=120)
    assert states.count(RunState.SUCCEEDED) == 4 and states.count(RunState.SKIPPED) == 4
    assert fleet.redis.llen("spent") == 4
    skipped = [fleet.ledger.get_by_key(m.window_key) for m in spend]
    reasons = {r.error_message or "" for r in skipped
               if r is not None and r.state == RunState.SKIPPED}  # fmt: skip
    assert len(reasons) == 1 and "budget 'job:spender' spent: $1.2000 of $1 per day" in \
        next(iter(reasons))


def test_a_holder_killed_with_kill_9_frees_its_slot_within_its_ttl(fleet: Fleet) -> None:
    fleet.start(1)
    first, second = message("hanger", 0), message("hanger", 1)
    fleet.publish(first)
    wait_for(lambda: fleet.redis.llen("hung") == 1, timeout=60, what="the holder started")
    assert fleet.redis.zcard("agentcron:limit:solo:slots") == 1
    worker = fleet.procs[0]
    for pid in [worker.pid, *children_of(worker.pid)]:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    def live_holders() -> int:
        now_s, now_us = fleet.redis.time()
        return int(fleet.redis.zcount("agentcron:limit:solo:slots",
                                      now_s * 1000 + now_us // 1000 + 1, "+inf"))

    wait_for(lambda: live_holders() == 0, timeout=10, what="the dead holder's slot to expire")
    assert time.monotonic() - killed <= 3 + 0.5  # its lease TTL (plus polling)
    fleet.start(1)  # a fresh worker (named w1) takes the slot for the next window
    fleet.publish(second)
    wait_for(lambda: fleet.redis.llen("hung") == 2, timeout=60, what="the next holder started")


def test_a_run_that_waits_longer_than_limit_wait_is_requeued_not_lost(fleet: Fleet) -> None:
    fleet.start(1)  # -c 2: both windows start at once; one holds "solo" for 4 s
    msgs = [message("slow_solo", n) for n in range(2)]
    for msg in msgs:
        fleet.publish(msg)
    assert fleet.wait_terminal(msgs, timeout=90) == [RunState.SUCCEEDED] * 2
    (first, second) = sorted(spans(fleet))
    assert second[0] >= first[1]  # never both at once
    log = (fleet.root / "w0.log").read_text()
    assert "requeued in" in log and "limits solo busy for 2s" in log  # waited 2 s, sent again
    records = [fleet.ledger.get_by_key(m.window_key) for m in msgs]
    assert all(r is not None and r.attempt == 1 for r in records)  # the same windows, once each


def test_an_async_worker_holds_limits_for_its_many_runs_in_flight(fleet: Fleet) -> None:
    fleet.start_async()  # one event loop, up to 1000 runs in flight
    msgs = [message("async_held", n) for n in range(10)]
    for msg in msgs:
        fleet.publish(msg, asynchronous=True)
    assert fleet.wait_terminal(msgs, timeout=120) == [RunState.SUCCEEDED] * 10
    assert most_at_once(spans(fleet)) == 2
    assert fleet.redis.llen("calls") == 10
    assert fleet.redis.zcard("agentcron:limit:two:slots") == 0
