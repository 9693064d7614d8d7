"""Scenarios 6 and 7: the broker restarts (with its data) or crashes (losing everything)."""

from __future__ import annotations

import signal

import pytest

from tests.faults.harness import (
    Cluster,
    JobDecl,
    all_terminal,
    poll,
    slot_windows,
    unacked_expired,
    window_message,
)
from tests.faults.oracle import check

pytestmark = pytest.mark.faults


def restart_broker_in_flight(cluster: Cluster, asynchronous: bool) -> None:
    """On the connection loss Celery (worker_cancel_long_running_tasks_on_connection_loss)
    terminates the prefork children mid-run, and kombu's restore of their unacked messages
    goes to the broker while it shuts down: after the restart neither the queue nor kombu's
    unacked hash holds them, and their rows stay 'running'. The beat's watchdog sees those rows'
    tokens no longer hold their leases and re-publishes them (agentcron/watch/stranded.py)."""
    cluster.settings |= {"watchdog_interval": 2, "watchdog_min_age": 3}
    cluster.stop_redis()
    cluster.start_redis("--appendonly", "yes", "--appendfsync", "always")
    options = {"config": {"seconds": 2}, "lease_ttl": 2, "overlap": "allow"}
    cluster.write_jobs([JobDecl("job", asynchronous=asynchronous, options=options)])
    start = cluster.worker("w1", asynchronous=asynchronous, concurrency=2)
    beat = cluster.beat()  # its watchdog (every 2 s here) re-publishes stranded windows
    if asynchronous:  # the beat's watchdog task goes to the sync queue: consume it there
        cluster.worker("s1", concurrency=1)
    before = [window_message("job", n) for n in range(3)]
    for message in before:
        cluster.publish(message, asynchronous=asynchronous)
    poll(lambda: len(cluster.rows("starts")) >= 2, 30, "runs in flight")
    cluster.stop_redis(signal.SIGTERM)
    cluster.start_redis()
    after = window_message("job", 10)
    cluster.publish(after, asynchronous=asynchronous)
    cluster.wait_state(after, {"succeeded"}, 30)  # the worker reconnected and did not hang
    assert start.running(), start.text()[-5000:]
    # a run cancelled by the connection loss comes back: kombu redelivers its message after
    # the visibility timeout if the restore kept it, else the watchdog re-publishes its window
    for message in before:
        cluster.wait_state(message, {"succeeded"}, 40)
    cluster.stop(beat)
    poll(lambda: unacked_expired(cluster), 30, "the visibility timeout to pass")
    cluster.stop(start)
    cluster.worker("w2", asynchronous=asynchronous, concurrency=2)  # takes any message restored
    poll(cluster.queue_empty, 20, "every message to be acknowledged")
    verdict = check(cluster, [m.window_key for m in [*before, after]])
    verdict.assert_ok(cluster.logs())
    assert verdict.succeeded == len(before) + 1


@pytest.mark.injects("redis-server restarted (AOF kept) while prefork runs are in flight")
def test_s06_broker_restart_in_flight_prefork(cluster: Cluster) -> None:
    restart_broker_in_flight(cluster, asynchronous=False)


@pytest.mark.injects("redis-server restarted (AOF kept) while asyncio-pool runs are in flight")
def test_s06_broker_restart_in_flight_asyncio(cluster: Cluster) -> None:
    restart_broker_in_flight(cluster, asynchronous=True)


@pytest.mark.injects("redis-server kill -9 without persistence (queue, leases, leader key gone) "
                     "under a running beat, restarted empty")
def test_s07_broker_crash_loses_everything(cluster: Cluster) -> None:
    schedule = "*/2s"
    cluster.write_jobs([
        JobDecl("tick", schedule=schedule, options={
            "config": {"seconds": 0.5}, "lease_ttl": 2, "misfire_grace": 60,
            "catchup_window": 60, "coalesce": "all"}),
        JobDecl("atick", schedule=schedule, asynchronous=True, options={
            "config": {"seconds": 0.5}, "lease_ttl": 2, "misfire_grace": 60,
            "catchup_window": 60, "coalesce": "all"}),
    ])  # fmt: skip
    cluster.worker("w1", concurrency=2)
    cluster.worker("a1", asynchronous=True)
    beat = cluster.beat()
    poll(lambda: len(cluster.rows("effects")) >= 4, 40, "the first windows to run")
    cluster.stop_redis(signal.SIGKILL)
    cluster.start_redis()
    count = len(cluster.rows("effects"))
    poll(lambda: len(cluster.rows("effects")) >= count + 6, 40, "windows to run after the crash")
    cluster.stop(beat)
    jobs = ("tick", "atick")
    try:
        poll(lambda: all_terminal(cluster, jobs), 30, "every recorded window to end")
    except AssertionError:
        poll(lambda: unacked_expired(cluster), 30, "the visibility timeout")
        cluster.worker("w2", concurrency=2)
        cluster.worker("a2", asynchronous=True)
        poll(lambda: all_terminal(cluster, jobs), 40, "every recorded window to end")
    windows = [w for job in jobs for w in slot_windows(cluster, job, schedule)]
    verdict = check(cluster, windows)
    verdict.assert_ok(cluster.logs())
    assert verdict.succeeded == verdict.expected >= 6, verdict.summary()
