"""The soak: 12 jobs on 1-2 s schedules, sync and async, random kill -9s and beat restarts.

``FAULTS_SOAK_SECONDS`` sets how long the chaos lasts (default 60). Every 2-4 s a random worker
process (a prefork child, or the whole asyncio worker, restarted at once) is killed with -9;
every ~10 s the beat is killed or stopped and started again; every 15-25 s Redis is restarted
(down 1-3 s, AOF kept); half-way the asyncio worker's clock steps 60 s ahead (LD_PRELOAD shim,
kept by its later restarts); every 1-3 s a poison entry (not JSON, over the size limit, pickle,
YAML, an unknown task: tests.poison_entries) is pushed onto a random queue. Then the chaos stops
and the windows drain; the oracle runs over every slot between the first and the last recorded
one, every poison entry must be in the dead-letter store, and the report gives availability too
(windows expected, succeeded, and ended otherwise with each reason).

A poison entry goes onto the asyncio queue only while that worker is up and at least 1.5 s
before its next kill -9: a worker killed between popping an entry and storing it loses it (the
same few milliseconds in which a plain Celery worker loses a popped batch).
"""

from __future__ import annotations

import email
import os
import random
import signal
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from agentcron.clock import SYSTEM_CLOCK
from agentcron.deadletters import DeadLetterStore
from agentcron.delivery.outbox import Outbox
from tests.faults.clockshift import clock_shift_env
from tests.faults.harness import (
    Cluster,
    JobDecl,
    Proc,
    aware,
    poll,
    recorded,
    slot_windows,
)
from tests.faults.oracle import availability, check, check_deliveries
from tests.poison_entries import kind_of_label, poison_entries, push
from tests.services import free_port

pytestmark = [pytest.mark.soak, pytest.mark.injects(
    "kill -9 of a random prefork child or the whole asyncio worker every 2-4 s, beat kill -9 / "
    "SIGTERM + restart every 8-12 s, redis-server restart every 15-25 s, the asyncio worker's "
    "clock stepped 60 s ahead half-way, 12 jobs on 1-2 s schedules, a poison entry on a random "
    "queue every 1-3 s")]
SECONDS = float(os.environ.get("FAULTS_SOAK_SECONDS", "60"))
OUTAGE_REACH = 2.0  # seconds before a Redis stop in which a run's side effect may be cut short
JOBS = [(f"sync{n}", "*/2s" if n % 2 else "*/1s", False) for n in range(6)]
JOBS += [(f"async{n}", "*/1s" if n % 2 else "*/2s", True) for n in range(6)]
MESSAGE_MAX_BYTES = 16 * 1024
REPORTING = ("sync1", "async1")  # each success reports; the outbox mails it to a local server


def jobs() -> list[JobDecl]:
    options = {"config": {"seconds": 0.3}, "lease_ttl": 2, "misfire_grace": 120,
               "catchup_window": 30, "coalesce": "all"}  # fmt: skip
    reporting = options | {"config": {"seconds": 0.3, "report": True},
                           "deliver": ["mailto:team@example.com"]}  # fmt: skip
    return [JobDecl(name, schedule=expr, asynchronous=asyncio_job,
                    options=reporting if name in REPORTING else options)
            for name, expr, asyncio_job in JOBS]  # fmt: skip


class Mailbox:
    """A local SMTP server (aiosmtpd, in this process) keeping every email it is sent."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 OK"

    def settings(self) -> dict[str, Any]:
        return {"smtp_url": f"smtp://127.0.0.1:{self.controller.port}",
                "mail_from": "soak@example.com", "delivery_interval": 0.2, "delivery_lease": 6,
                "delivery_timeout": 5}  # fmt: skip


class Chaos:
    """Random kill -9 of worker processes and beat restarts."""

    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster, self.rng = cluster, rng
        self.sync_workers = [cluster.worker(f"s{n}", concurrency=3) for n in range(2)]
        self.async_worker = cluster.worker("a0", asynchronous=True)
        self.beat = cluster.beat("beat0")
        self.kills = self.beat_restarts = self.redis_restarts = self.clock_steps = 0
        self.async_kills = 0
        self.redis_stops: list[float] = []  # time.monotonic() of each Redis stop
        self.clock_env: dict[str, str] = {}  # the asyncio worker's host clock, once stepped
        self.killed: set[int] = set()  # pids killed with -9 (see tests.faults.oracle)

    def kill_worker(self) -> None:
        self.kills += 1
        if self.rng.random() < 0.7:
            worker = self.rng.choice(self.sync_workers)
            children = worker.children()
            if children:
                victim = self.rng.choice(children)
                self.killed.add(victim)
                os.kill(victim, signal.SIGKILL)
            return
        self.killed.update(self.async_worker.family())
        self.async_kills += 1  # its outbox sender too: one email may go out again
        self.async_worker.signal(signal.SIGKILL)
        self.async_worker.popen.wait(10)
        self.async_worker = self.cluster.worker(f"a{self.kills}", asynchronous=True, ready=False,
                                                environ=self.clock_env)  # fmt: skip

    def restart_redis(self) -> None:
        self.redis_restarts += 1
        self.redis_stops.append(time.monotonic())
        self.cluster.stop_redis(signal.SIGTERM)
        time.sleep(self.rng.uniform(1, 3))
        self.cluster.start_redis()

    def cancelled_by_outage(self) -> frozenset[int]:
        """Processes whose run a Redis restart cut short: on the lost broker connection Celery
        terminates the runs in flight (worker_cancel_long_running_tasks_on_connection_loss, as
        design.md requires) and redelivers them, so a side effect made just before the stop is
        made again: a kill between side effect and commit, by Celery instead of by the test.
        (Side effects carry CLOCK_MONOTONIC times, the clock this process reads too.)"""
        return frozenset(pid for _key, _job, pid, _attempt, at, _note in self.cluster.rows("effects")
                         if any(stop - OUTAGE_REACH <= at <= stop + 2.0 for stop in self.redis_stops))

    def step_clock(self) -> None:
        """The asyncio worker's host clock steps 60 s ahead (a warm restart under the shim)."""
        self.clock_steps += 1
        self.clock_env = clock_shift_env(self.cluster.root, 60)
        self.cluster.stop(self.async_worker)
        self.async_worker = self.cluster.worker(f"a-step{self.clock_steps}", asynchronous=True,
                                                ready=False, environ=self.clock_env)  # fmt: skip

    def restart_beat(self) -> None:
        self.beat_restarts += 1
        self.beat.signal(self.rng.choice([signal.SIGKILL, signal.SIGTERM]))
        self.beat.popen.wait(30)
        self.beat = self.cluster.beat(f"beat{self.beat_restarts}")

    def workers(self) -> list[Proc]:
        return [*self.sync_workers, self.async_worker]


class Garbage:
    """Poison entries pushed at random, counted by (queue, kind)."""

    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster, self.rng = cluster, rng
        self.pushed: Counter[tuple[str, str]] = Counter()

    def push(self, chaos: Chaos, seconds_to_next_kill: float) -> None:
        queue = self.rng.choice(["agentcron.sync", "agentcron.async"])
        if queue == "agentcron.async" and (seconds_to_next_kill < 1.5
                                           or "ready." not in chaos.async_worker.text()):
            queue = "agentcron.sync"  # see the module docstring
        label, raw = self.rng.choice(sorted(poison_entries(queue, MESSAGE_MAX_BYTES).items()))
        push(self.cluster.broker_url, queue, raw)
        self.pushed[(queue, kind_of_label(label))] += 1

    def dead_lettered(self) -> Counter[tuple[str, str]]:
        store = DeadLetterStore(self.cluster.ledger.engine)
        return Counter((d.queue, d.kind) for d in store.list(limit=100_000))


def windows_ended(cluster: Cluster, names: list[str], until: datetime) -> bool:
    """True when every recorded window of ``names`` with a slot up to ``until`` is terminal."""
    return all(r.state.terminal for name in names for r in recorded(cluster, name)
               if aware(r.slot) <= until)  # fmt: skip


def stuck(cluster: Cluster, names: list[str], until: datetime) -> str:
    """The windows that did not end, each with its row and every log line naming it."""
    rows = [r for name in names for r in recorded(cluster, name)
            if aware(r.slot) <= until and not r.state.terminal]  # fmt: skip
    lines = []
    for row in rows[:5]:
        lines.append(f"{row.window_key}: state={row.state.value} attempt={row.attempt} "
                     f"token={row.token} worker={row.worker_id} scheduled={row.scheduled_at} "
                     f"started={row.started_at} trigger={row.trigger}")  # fmt: skip
        lines += [f"  {proc.log.name}: {line}" for proc in cluster.procs
                  for line in proc.text().splitlines() if row.window_key in line]  # fmt: skip
    return f"{len(rows)} windows not ended:\n" + "\n".join(lines)


@pytest.mark.timeout(SECONDS + 420)
def test_soak_random_kills(cluster: Cluster, record_property: Any) -> None:
    mailbox = Mailbox()
    mailbox.controller.start()
    try:
        soak(cluster, record_property, mailbox)
    finally:
        mailbox.controller.stop()


def soak(cluster: Cluster, record_property: Any, mailbox: Mailbox) -> None:
    rng = random.Random(int(os.environ.get("FAULTS_SOAK_SEED", "8")))
    cluster.settings["message_max_bytes"] = MESSAGE_MAX_BYTES
    cluster.settings |= mailbox.settings()
    cluster.write_jobs(jobs())
    cluster.stop_redis()  # restarts keep the data (AOF); the watchdog re-enqueues what is lost
    cluster.start_redis("--appendonly", "yes", "--appendfsync", "everysec")
    cluster.settings |= {"watchdog_interval": 5, "watchdog_min_age": 5}
    chaos = Chaos(cluster, rng)
    garbage = Garbage(cluster, rng)
    started = time.monotonic()
    next_kill, next_beat, next_garbage = started + 3, started + 10, started + 1
    next_redis, step_at = started + 15, started + SECONDS / 2
    while time.monotonic() - started < SECONDS:
        now = time.monotonic()
        if now >= next_kill:
            chaos.kill_worker()
            next_kill = now + rng.uniform(2, 4)
        if now >= next_beat:
            chaos.restart_beat()
            next_beat = now + rng.uniform(8, 12)
        if now >= next_garbage:
            garbage.push(chaos, next_kill - now)
            next_garbage = now + rng.uniform(1, 3)
        if now >= next_redis:
            chaos.restart_redis()
            next_redis = time.monotonic() + rng.uniform(15, 25)
        if now >= step_at and not chaos.clock_steps:
            chaos.step_clock()
        time.sleep(0.2)
    ended = SYSTEM_CLOCK.now()
    names = [name for name, _, _ in JOBS]
    # the beat keeps running (its owed re-publication and watchdog are part of the system);
    # messages of killed asyncio workers come back after the visibility timeout, and a worker
    # that starts after it restores them at once (a running one is slow: see
    # test_s02_running_worker_redelivers_within_visibility_timeout)
    timeout = float(cluster.settings["visibility_timeout"])
    poll(lambda: time.monotonic() - started - SECONDS > timeout + 1, timeout + 5,
         "the visibility timeout", interval=0.5)  # fmt: skip
    for proc in chaos.workers():
        cluster.stop(proc)
    cluster.worker("s-final", concurrency=3)
    cluster.worker("a-final", asynchronous=True)
    try:
        poll(lambda: windows_ended(cluster, names, ended), 120, "every window up to the end to end")
    except AssertionError as timeout_error:
        raise AssertionError(f"{timeout_error}\n{stuck(cluster, names, ended)}") from None
    poll(lambda: garbage.dead_lettered().total() >= garbage.pushed.total(), 60,
         "every poison entry dead-lettered")  # fmt: skip
    outbox = Outbox(cluster.ledger.engine, SYSTEM_CLOCK)
    poll(lambda: not outbox.list(state="pending", limit=1), 60, "every report to be mailed")
    cluster.stop(chaos.beat)
    windows = [w for name, expr, _ in JOBS for w in slot_windows(cluster, name, expr, ended)]
    verdict = check(cluster, windows, frozenset(chaos.killed) | chaos.cancelled_by_outage())
    mailed = [w for name, expr, _ in JOBS if name in REPORTING
              for w in slot_windows(cluster, name, expr, ended)]  # fmt: skip
    # a sender killed (or stopped) between its send and its mark sends that email once more
    delivery_problems = check_deliveries(cluster, mailed, mailbox.messages,
                                         kills=chaos.async_kills + chaos.clock_steps + 1)
    report = (f"soak {SECONDS:.0f}s: windows expected={verdict.expected} "
              f"successes={verdict.succeeded} other={dict(verdict.terminal_other)} "
              f"duplicates={len(verdict.duplicates)} lost={len(verdict.lost)} "
              f"redone_after_kill={len(verdict.redone_after_kill)} "
              f"kills={chaos.kills} beat_restarts={chaos.beat_restarts} "
              f"redis_restarts={chaos.redis_restarts} clock_steps={chaos.clock_steps} "
              f"poison={garbage.pushed.total()} dead_letters={garbage.dead_lettered().total()} "
              f"emails={len(mailbox.messages)} for {len(outbox.list(state='sent', limit=100_000))} "
              f"sent deliveries; "
              f"{availability(verdict)}")  # fmt: skip
    print(report)
    record_property("figures", report)
    (cluster.root.parent / "soak-report.txt").write_text(report + "\n")
    verdict.assert_ok(cluster.logs())
    assert not delivery_problems, "\n".join(delivery_problems)
    assert len(mailbox.messages) >= SECONDS / 2  # the reporting jobs: ~1.5 windows a second
    assert garbage.dead_lettered() == garbage.pushed, (garbage.dead_lettered(), garbage.pushed)
    assert verdict.expected >= 8 * SECONDS
