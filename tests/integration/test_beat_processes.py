"""Real ``celery -A workers.app beat`` processes against the real Redis and PostgreSQL."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
import redis

from agentcron.agents import DeclaredModules
from agentcron.clock import SYSTEM_CLOCK
from agentcron.jobs import Job
from agentcron.ledger.schedules import ScheduleStore
from tests.integration.beat_support import (
    RedisBroker,
    beat_env,
    beat_process,
    now_plus,
    queued_keys,
    reset_ledger,
    rows,
    wait_until,
    worker_process,
    write_schedule,
)
from tests.services import stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
TICK = 'Job("tick", agent="beatagents:tick", schedule="*/1s")'


@pytest.fixture
def engine(postgres_url: str):  # type: ignore[no-untyped-def]
    engine = reset_ledger(postgres_url)
    yield engine
    engine.dispose()


def test_two_beats_one_row_and_one_message_per_window(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, postgres_url: str, engine
) -> None:
    env = beat_env(write_schedule(tmp_path, TICK), redis_url, postgres_url)
    with beat_process(tmp_path, env, "a"), beat_process(tmp_path, env, "b"):
        wait_for(lambda: len(rows(engine)) >= 6, timeout=40, what="six windows")
        # read while both run: when the leader stops, the standby takes over and re-sends the
        # rows still 'scheduled' (no worker runs here), which workers drop as duplicates
        recorded = [r["window_key"] for r in rows(engine)]
        keys = [k for k in queued_keys(redis_client) if k in recorded]
    assert len(recorded) == len(set(recorded)) >= 6
    assert Counter(keys).most_common(1)[0][1] == 1, "a window was published twice"
    assert set(keys) == set(recorded)
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert "is the leader" in logs and "lease lost" not in logs


def test_restart_no_duplicate_row_and_catchup_policy(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, postgres_url: str, engine
) -> None:
    job = 'Job("tick", agent="beatagents:tick", schedule="*/2s", catchup_window=3)'
    env = beat_env(write_schedule(tmp_path, job), redis_url, postgres_url)
    with beat_process(tmp_path, env, "first") as first:
        wait_for(lambda: len(rows(engine)) >= 2, timeout=40, what="two windows")
        stop(first, signal.SIGKILL)
    before = {r["window_key"] for r in rows(engine)}
    wait_until(now_plus(9), "the beat to stay down across four slots")
    with beat_process(tmp_path, env, "second"):
        wait_for(lambda: any(r["trigger"] == "catchup" for r in rows(engine)), timeout=30,
                 what="the catch-up window")  # fmt: skip
        after = rows(engine)
    keys = [r["window_key"] for r in after]
    assert len(keys) == len(set(keys)), "one row per window"
    assert before <= set(keys)
    catchup = [r for r in after if r["trigger"] == "catchup"]
    missed = [r for r in after if r["state"] == "missed"]
    assert len(catchup) == 1  # coalesce=latest: the newest slot inside the window
    assert len(missed) >= 2 and all("scheduler down" in r["error_message"] for r in missed)
    queued = Counter(queued_keys(redis_client))
    assert not any(r["window_key"] in queued for r in missed), "a missed window was published"
    new = [k for k in queued if k not in before]
    assert all(queued[k] == 1 for k in new), "a new window was published twice"


def test_schedule_added_paused_resumed_at_runtime(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, postgres_url: str, engine
) -> None:
    env = beat_env(write_schedule(tmp_path, ""), redis_url, postgres_url,
                   AGENTCRON_AGENT_MODULES="beatagents")
    store = ScheduleStore(engine, SYSTEM_CLOCK)
    with beat_process(tmp_path, env) as beat:
        wait_for(lambda: "beat active" in (tmp_path / "beat.log").read_text(), timeout=30,
                 what="the beat to start")  # fmt: skip
        store.add(Job("dyn", agent="beatagents:tick", schedule="*/1s"),
                  declared=DeclaredModules(("beatagents",)))
        added = SYSTEM_CLOCK.now()
        wait_for(lambda: len(rows(engine, "dyn")) >= 1, timeout=5, what="the added job")
        assert (SYSTEM_CLOCK.now() - added).total_seconds() < 5
        store.pause("dyn")
        wait_until(now_plus(2.5), "the pause to be seen")
        paused = len(rows(engine, "dyn"))
        wait_until(now_plus(3), "three paused slots")
        assert len(rows(engine, "dyn")) == paused
        store.resume("dyn")
        wait_for(lambda: len(rows(engine, "dyn")) > paused, timeout=5, what="the resumed job")
        assert beat.poll() is None
    keys = queued_keys(redis_client)
    assert len(keys) == len(set(keys)) == len(rows(engine, "dyn"))


def test_broker_down_across_a_tick_is_late_not_lost(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, postgres_url: str, engine
) -> None:
    broker = RedisBroker(tmp_path)
    broker.start()
    job = 'Job("tick", agent="beatagents:tick", schedule="*/2s")'
    env = beat_env(write_schedule(tmp_path, job), broker.url, postgres_url,
                   AGENTCRON_REDIS_URL=redis_url)  # fmt: skip  (leases stay on the main Redis)
    client = redis.Redis(port=broker.port)
    try:
        with beat_process(tmp_path, env):
            wait_for(lambda: client.llen("agentcron.sync") >= 1, timeout=40, what="a message")
            broker.stop()
            down_at = SYSTEM_CLOCK.now()
            wait_for(lambda: any(r["slot"] > down_at for r in rows(engine)), timeout=10,
                     what="a window recorded while the broker is down")  # fmt: skip
            lost = [r["window_key"] for r in rows(engine) if r["slot"] > down_at]
            assert all(r["state"] == "scheduled" for r in rows(engine) if r["slot"] > down_at)
            broker.start()
            wait_for(lambda: set(lost) <= set(queued_keys(client)), timeout=20,
                     what="the windows of the outage on the broker")  # fmt: skip
    finally:
        broker.stop()


def test_beat_and_worker_one_success_per_window(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, postgres_url: str, engine
) -> None:
    """The pipelined publisher's messages run in a real Celery worker, once per window."""
    out = tmp_path / "effects.txt"
    job = f'Job("rec", agent="beatagents:record", schedule="*/1s", config={{"out": "{out}"}})'
    env = beat_env(write_schedule(tmp_path, job), redis_url, postgres_url)
    with worker_process(tmp_path, env), beat_process(tmp_path, env, "a"), \
            beat_process(tmp_path, env, "b"):  # fmt: skip
        wait_for(lambda: sum(r["state"] == "succeeded" for r in rows(engine)) >= 4, timeout=60,
                 what="four successful windows")  # fmt: skip
    effects = out.read_text().split()
    succeeded = [r["window_key"] for r in rows(engine) if r["state"] == "succeeded"]
    assert len(effects) == len(set(effects)), "a window ran twice"
    assert set(succeeded) <= set(effects)


def test_paused_leader_steps_down_without_crash_loop(
    tmp_path: Path, redis_client: redis.Redis, redis_url: str, postgres_url: str, engine
) -> None:
    """Scenario 11: the leader is SIGSTOPped past its lease TTL; the standby takes over; the
    resumed one notices before dispatching, steps down and keeps running as a standby."""
    env = beat_env(write_schedule(tmp_path, TICK), redis_url, postgres_url)
    with beat_process(tmp_path, env, "a") as a:
        wait_for(lambda: "is the leader" in (tmp_path / "a.log").read_text(), timeout=30,
                 what="a to lead")  # fmt: skip
        with beat_process(tmp_path, env, "b") as b:
            wait_for(lambda: "beat standing by" in (tmp_path / "b.log").read_text()
                     or "Starting" in (tmp_path / "b.log").read_text(), timeout=30,
                     what="b to start")  # fmt: skip
            a.send_signal(signal.SIGSTOP)
            wait_for(lambda: "is the leader" in (tmp_path / "b.log").read_text(), timeout=20,
                     what="b to take over")  # fmt: skip
            wait_until(now_plus(2), "b to emit a few windows")
            a.send_signal(signal.SIGCONT)
            wait_for(lambda: "stepped down: lease lost" in (tmp_path / "a.log").read_text(),
                     timeout=10, what="a to step down")  # fmt: skip
            wait_until(now_plus(3), "a few more windows")
            assert a.poll() is None and b.poll() is None, "no crash"
            keys = [r["window_key"] for r in rows(engine)]
            assert len(keys) == len(set(keys))
    log_a = (tmp_path / "a.log").read_text()
    assert log_a.count("stepped down: lease lost") == 1
    assert "Traceback" not in log_a
