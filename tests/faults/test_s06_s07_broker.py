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


@pytest.mark.injects("redis-server restarted (AOF kept) while sync and async runs are in flight")
def test_s06_broker_restart_in_flight(cluster: Cluster) -> None:
    cluster.stop_redis()
    cluster.start_redis("--appendonly", "yes", "--appendfsync", "always")
    cluster.write_jobs([
        JobDecl("sync_job", options={"config": {"seconds": 2}, "lease_ttl": 2, "overlap": "allow"}),
        JobDecl("async_job", asynchronous=True,
                options={"config": {"seconds": 2}, "lease_ttl": 2, "overlap": "allow"}),
    ])  # fmt: skip
    sync_worker = cluster.worker("w1", concurrency=2)
    async_worker = cluster.worker("a1", asynchronous=True)
    before = [window_message("sync_job", n) for n in range(3)]
    before += [window_message("async_job", n) for n in range(3)]
    for message in before:
        cluster.publish(message, asynchronous=message.job == "async_job")
    poll(lambda: len(cluster.rows("starts")) >= 3, 30, "runs in flight")
    cluster.stop_redis(signal.SIGTERM)
    cluster.start_redis()
    after = [window_message("sync_job", 10), window_message("async_job", 10)]
    for message in after:
        cluster.publish(message, asynchronous=message.job == "async_job")
    for message in after:  # the workers reconnected and did not hang
        cluster.wait_state(message, {"succeeded"}, 40)
    # runs cancelled by the connection loss come back after the visibility timeout
    poll(lambda: unacked_expired(cluster), 30, "the visibility timeout to pass")
    for proc in (sync_worker, async_worker):
        cluster.stop(proc)
    cluster.worker("w2", concurrency=2)
    cluster.worker("a2", asynchronous=True)
    for message in before:
        cluster.wait_state(message, {"succeeded"}, 40)
    poll(cluster.queue_empty, 20, "every message to be acknowledged")
    verdict = check(cluster, [m.window_key for m in before + after])
    verdict.assert_ok(cluster.logs())
    assert verdict.succeeded == len(before + after)


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
    poll(lambda: len(cluster.rows("effects")) >= count + 4, 40, "windows to run after the crash")
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
    assert verdict.succeeded >= 8, verdict.summary()
