"""Issue 13 item 7 against real ``celery`` workers, Redis and PostgreSQL: broker messages are
not trusted. A forged or replayed ``force`` never re-runs a window, a granted one keeps the
first run's record; a window that is not a slot of its job (and not recorded) is refused; with
``AGENTCRON_SIGNING_KEY`` set, unsigned and tampered messages are refused while signed ones
(Celery's producer, the pipelined Redis path, ``agentcron trigger``) run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy

from agentcron.beat.fastpublish import RedisListPublisher, header_template
from agentcron.deadletters import DeadLetterStore
from agentcron.emission.publisher import CeleryPublisher, Outgoing
from agentcron.ledger.history import history_of
from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.store import Ledger
from agentcron.messages import ASYNC_TASK, SYNC_TASK, RunMessage
from agentcron.signing import signed_kwargs
from agentcron.windows import window_key
from tests.integration.workers_support import (
    ROOT,
    celery_worker,
    use_broker,
    wait_ready,
    worker_env,
)
from tests.services import wait_for
from workers.app import app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
KEY = "h3-test-signing-key-0123456789abcdef"
AGENTS = '''
import os, redis

def tick(ctx):
    redis.Redis.from_url(os.environ["AGENTCRON_TEST_REDIS_URL"]).rpush(
        "effects:" + ctx.window_key, ctx.trigger)
    return {"trigger": ctx.trigger}

async def atick(ctx):
    return tick(ctx)
'''
SCHEDULE = '''
from agentcron import Job

JOBS = [Job("hourly", agent="trust_agents:tick", schedule="0 * * * *", misfire_grace="1d"),
        Job("ahourly", agent="trust_agents:atick", schedule="0 * * * *", misfire_grace="1d",
            overlap="allow")]
'''


class Rig:
    """A sync worker over one schedule file, and the ledger it writes."""

    def __init__(self, root: Path, client: redis.Redis, ledger: Ledger, env: dict[str, str]):
        self.root, self.redis, self.ledger, self.env = root, client, ledger, env

    def slot(self, hours_ago: int = 0) -> datetime:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        return now - timedelta(hours=hours_ago)

    def message(self, slot: datetime, trigger: str = "schedule", force: bool = False,
                record: bool = True, job: str = "hourly") -> RunMessage:  # fmt: skip
        msg = RunMessage(job, window_key(job, slot), slot, slot, trigger, 1, force)
        if record:
            self.ledger.record_scheduled([NewWindow(job, slot, msg.window_key, slot,
                                                    trigger)])  # fmt: skip
        return msg

    def send(self, kwargs: dict[str, Any]) -> None:
        if kwargs["job"] == "ahourly":
            app.send_task(ASYNC_TASK, kwargs=kwargs, queue="agentcron.async")
        else:
            app.send_task(SYNC_TASK, kwargs=kwargs, queue="agentcron.sync")

    def effects(self, msg: RunMessage) -> list[bytes]:
        return [e if isinstance(e, bytes) else e.encode()
                for e in self.redis.lrange(f"effects:{msg.window_key}", 0, -1)]  # fmt: skip

    def state(self, msg: RunMessage) -> RunState | None:
        record = self.ledger.get(msg.job, msg.window_start)
        return None if record is None else record.state

    def settle(self) -> None:
        wait_for(lambda: not self.redis.llen("agentcron.sync") and not self.redis.hlen("unacked")
                 and not self.redis.llen("agentcron.async"),
                 timeout=30, what="every message acknowledged")  # fmt: skip

    def log(self) -> str:
        return "".join((self.root / name).read_text() for name in ("worker.log", "async.log"))

    def refused(self, msg: RunMessage, reason: str) -> None:
        wait_for(lambda: f"refused run message {msg.window_key} (job {msg.job}): {reason}"
                 in self.log(), timeout=30, what=f"{msg.window_key} refused: {reason}")


def _rig(tmp_path: Path, redis_client: redis.Redis, redis_url: str, postgres_url: str,
         **extra: str) -> Iterator[Rig]:  # fmt: skip
    (tmp_path / "trust_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(SCHEDULE))
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs"))
        conn.execute(sqlalchemy.text("DELETE FROM run_history"))
        conn.execute(sqlalchemy.text("DELETE FROM dead_letters"))
        conn.execute(sqlalchemy.text("DELETE FROM schedules"))
    use_broker(redis_url)
    env = worker_env(AGENTCRON_DATABASE_URL=postgres_url,
                     AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
                     AGENTCRON_DATA_DIR=str(tmp_path / "data"), **extra)  # fmt: skip
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    with celery_worker("-Q", "agentcron.sync", "-c", "1", "-n", "trust@test", env=env,
                       log=tmp_path / "worker.log"), \
         celery_worker("-Q", "agentcron.async", "-n", "atrust@test",
                       env={**env, "AGENTCRON_WORKER_POOL": "async"}, log=tmp_path / "async.log"):
        wait_ready("trust@test")
        wait_ready("atrust@test")
        yield Rig(tmp_path, redis_client, ledger, env)
    ledger.close()


@pytest.fixture
def rig(tmp_path: Path, redis_client: redis.Redis, redis_url: str,
        postgres_url: str) -> Iterator[Rig]:  # fmt: skip
    yield from _rig(tmp_path, redis_client, redis_url, postgres_url)


@pytest.fixture
def signed_rig(tmp_path: Path, redis_client: redis.Redis, redis_url: str,
               postgres_url: str) -> Iterator[Rig]:  # fmt: skip
    yield from _rig(tmp_path, redis_client, redis_url, postgres_url,
                    AGENTCRON_SIGNING_KEY=KEY)


def agentcron(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("agentcron")), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_forged_force_never_reruns_and_a_granted_one_keeps_the_first_record(rig: Rig) -> None:
    sent = agentcron(rig.env, "trigger", "hourly")
    assert sent.returncode == 0, sent.stderr
    key = sent.stdout.split()[1]
    first = RunMessage.from_kwargs({"job": "hourly", "window_key": key, "slot": key[7:],
                                    "window_start": key[7:]})  # fmt: skip
    wait_for(lambda: rig.state(first) is RunState.SUCCEEDED, timeout=30, what="first run")
    before = rig.ledger.get(first.job, first.window_start)
    forged = RunMessage(first.job, first.window_key, first.window_start, first.slot,
                        "schedule", 1, force=True)  # fmt: skip
    rig.send(forged.to_kwargs())
    wait_for(lambda: "force not granted in the ledger" in rig.log(), timeout=30,
             what="the forged force dropped")  # fmt: skip
    rig.settle()
    assert len(rig.effects(first)) == 1 and history_of(rig.ledger.engine, [key]) == {}
    assert rig.ledger.get(first.job, first.window_start) == before  # untouched

    forced = agentcron(rig.env, "trigger", "hourly", "--force")
    assert forced.returncode == 0 and forced.stdout.split()[1] == key, forced.stdout
    wait_for(lambda: len(rig.effects(first)) == 2, timeout=30, what="the forced run")
    wait_for(lambda: rig.state(first) is RunState.SUCCEEDED, timeout=30, what="forced run ends")
    rig.send(forced_kwargs := forged.to_kwargs())  # a replay of the forced message
    wait_for(lambda: rig.log().count("force not granted in the ledger") == 2, timeout=30,
             what="the replay's force dropped")  # fmt: skip
    rig.settle()
    assert len(rig.effects(first)) == 2 and forced_kwargs["force"] is True
    [kept] = history_of(rig.ledger.engine, [key])[key]
    assert before is not None
    assert (kept.state, kept.token, kept.started_at, kept.finished_at, kept.result) == (
        before.state, before.token, before.started_at, before.finished_at, before.result)
    shown = agentcron(rig.env, "runs", "--job", "hourly", "--json")
    assert shown.returncode == 0, shown.stderr
    [run] = json.loads(shown.stdout)
    assert [h["token"] for h in run["history"]] == [before.token]


def test_a_window_that_is_not_a_slot_is_refused(rig: Rig) -> None:
    off = rig.slot(2) + timedelta(minutes=17)  # the job fires on the hour only
    not_a_slot = rig.message(off, record=False)
    future = rig.message(rig.slot() + timedelta(days=30), record=False)
    manual = rig.message(rig.slot(3), trigger="manual", record=False)
    recorded_off = rig.message(rig.slot(4) + timedelta(minutes=17))  # recorded: may run
    for msg in (not_a_slot, future, manual, recorded_off):
        rig.send(msg.to_kwargs())
    rig.refused(not_a_slot, "slot ")
    rig.refused(future, "its slot is in the future")
    rig.refused(manual, "a manual window must be recorded")
    on_loop = [rig.message(off, record=False, job="ahourly"),
               rig.message(rig.slot(3), trigger="backfill", record=False, job="ahourly")]
    on_loop_ok = [rig.message(rig.slot(4) + timedelta(minutes=17), job="ahourly"),
                  rig.message(rig.slot(5), job="ahourly", record=False)]  # a slot: no lookup
    for msg in on_loop + on_loop_ok:
        rig.send(msg.to_kwargs())
    rig.refused(on_loop[0], "slot ")
    rig.refused(on_loop[1], "a backfill window must be recorded")
    for msg in [recorded_off, *on_loop_ok]:
        wait_for(lambda m=msg: rig.state(m) is RunState.SUCCEEDED, timeout=30,  # type: ignore[misc]
                 what=f"{msg.window_key} to run")
    rig.settle()
    for msg in (not_a_slot, future, manual, *on_loop):
        assert rig.effects(msg) == [] and rig.state(msg) is None, msg.window_key


def test_with_a_key_only_signed_messages_run(signed_rig: Rig) -> None:
    rig = signed_rig
    unsigned = rig.message(rig.slot(1))
    rig.send(unsigned.to_kwargs())
    good = rig.message(rig.slot(2))
    forced = signed_kwargs(good, KEY) | {"force": True}  # a signed message, force added
    rig.send(forced)
    other = rig.message(rig.slot(3))
    moved = signed_kwargs(good, KEY) | {"window_key": other.window_key,
                                        "window_start": other.to_kwargs()["window_start"],
                                        "slot": other.to_kwargs()["slot"]}  # fmt: skip
    rig.send(moved)
    wrong_key = signed_kwargs(other, "not-the-key")
    rig.send(wrong_key)
    rig.refused(unsigned, "unsigned message")
    rig.refused(good, "bad signature")
    wait_for(lambda: rig.log().count("bad signature") >= 3, timeout=30, what="3 bad signatures")
    rig.settle()
    for msg in (unsigned, good, other):
        assert rig.effects(msg) == [] and rig.state(msg) is RunState.SCHEDULED, msg.window_key
    letters = DeadLetterStore(rig.ledger.engine).list()
    assert sorted(letter.kind for letter in letters) == ["forged", "forged", "forged", "unsigned"]
    assert {letter.queue for letter in letters} == {"agentcron.sync"}
    assert all(KEY not in letter.raw.decode() for letter in letters)

    celery_path = rig.message(rig.slot(4))
    CeleryPublisher(app, signing_key=KEY).publish([Outgoing(SYNC_TASK, "agentcron.sync",
                                                            celery_path)])  # fmt: skip
    client = redis.Redis.from_url(rig.env["AGENTCRON_BROKER_URL"])
    fast_path = rig.message(rig.slot(5))
    RedisListPublisher(client, header_template(app), signing_key=KEY).publish(
        [Outgoing(SYNC_TASK, "agentcron.sync", fast_path)])
    triggered = agentcron(rig.env, "trigger", "hourly")
    assert triggered.returncode == 0, triggered.stderr
    current = rig.message(rig.slot(0), record=False)
    for msg in (celery_path, fast_path, current):
        wait_for(lambda m=msg: rig.state(m) is RunState.SUCCEEDED, timeout=30,  # type: ignore[misc]
                 what=f"{msg.window_key} signed run")
    assert KEY not in rig.log() and KEY not in triggered.stdout + triggered.stderr
