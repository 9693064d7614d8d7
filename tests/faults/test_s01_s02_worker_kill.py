"""Scenarios 1 and 2: a prefork child, then a whole worker, killed with SIGKILL mid-run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.harness import Cluster, JobDecl, Proc, poll, unacked_expired, window_message
from tests.faults.oracle import check

pytestmark = pytest.mark.faults



@pytest.mark.injects("kill -9 of the prefork child running the window")
def test_s01_prefork_child_kill(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 2}, "lease_ttl": 2})])
    worker = cluster.worker("w1", concurrency=2)
    message = window_message("slow", 0)
    cluster.publish(message)
    first = poll(lambda: cluster.rows("starts", message.window_key), 30, "the run to start")
    child = first[0][2]
    assert child in worker.children()
    os.kill(child, signal.SIGKILL)
    cluster.wait_state(message, {"succeeded", "failed"}, 30)
    assert cluster.state(message) == "succeeded", cluster.logs()
    assert len(cluster.rows("starts", message.window_key)) == 2
    poll(cluster.queue_empty, 15, "the message to be acknowledged")
    check(cluster, [message.window_key]).assert_ok(cluster.logs())


@pytest.mark.injects("kill -9 of the whole worker (main + children) with prefetched messages; "
                     "a worker restarts after the visibility timeout")
def test_s02_whole_worker_kill(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 1.5}, "lease_ttl": 2,
                                                 "overlap": "allow"})])  # fmt: skip
    worker = cluster.worker("w1", concurrency=1)
    messages = [window_message("slow", n) for n in range(3)]
    for message in messages:
        cluster.publish(message)
    poll(lambda: cluster.rows("starts"), 30, "a run to start")
    worker.signal(signal.SIGKILL, with_children=True)
    killed_at = time.monotonic()
    timeout = float(cluster.settings["visibility_timeout"])
    poll(lambda: unacked_expired(cluster), timeout + 5, "the visibility timeout to pass")
    cluster.worker("w2", concurrency=2)
    for message in messages:
        cluster.wait_state(message, {"succeeded", "failed"}, 30)
    late = time.monotonic() - killed_at
    assert late < timeout + 15, f"redelivered {late:.1f}s after the kill (timeout {timeout}s)"
    poll(cluster.queue_empty, 15, "every message to be acknowledged")
    verdict = check(cluster, [m.window_key for m in messages])
    verdict.assert_ok(cluster.logs())
    assert verdict.succeeded == 3


@pytest.mark.injects("kill -9 of a whole worker while another worker keeps running")
def test_s02_running_worker_redelivers_within_visibility_timeout(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 1}, "lease_ttl": 2})])
    doomed = cluster.worker("w1", concurrency=1)
    message = window_message("slow", 0)
    cluster.publish(message)
    poll(lambda: cluster.rows("starts"), 30, "the run to start")
    doomed.signal(signal.SIGKILL, with_children=True)
    cluster.worker("w2", concurrency=1)  # already running when the visibility timeout passes
    timeout = float(cluster.settings["visibility_timeout"])
    cluster.wait_state(message, {"succeeded"}, timeout + 15)


RESTORE_MUTEX = "unacked_mutex"  # kombu's Redis lock around each sweep of unacked messages


def stopped_holding_the_restore_mutex(cluster: Cluster, worker: Proc, tries: int = 10) -> bool:
    """SIGSTOP ``worker`` at a moment it holds kombu's restore mutex (taken for milliseconds
    every sweep, once a second here); True once caught holding it."""
    client = cluster.redis()
    for _ in range(tries):
        deadline = time.monotonic() + 2
        while not client.exists(RESTORE_MUTEX) and time.monotonic() < deadline:
            pass
        worker.signal(signal.SIGSTOP)
        if client.exists(RESTORE_MUTEX):
            return True
        worker.signal(signal.SIGCONT)
    return False


@pytest.mark.injects("kill -9 of a whole worker caught holding kombu's restore mutex, a "
                     "message of its own unacknowledged; a new worker started at once")
def test_s02_worker_killed_holding_the_restore_mutex(cluster: Cluster) -> None:
    """Before the mutex's expire was bounded, the dead worker's lock stopped every sweep for
    kombu's 300 s: its message (and any other dead worker's) came back 5 minutes late."""
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 15}, "lease_ttl": 2})])
    doomed = cluster.worker("w1", concurrency=1)
    message = window_message("slow", 0)
    cluster.publish(message)
    poll(lambda: cluster.rows("starts"), 30, "the run to start")
    assert stopped_holding_the_restore_mutex(cluster, doomed), "never caught holding the mutex"
    doomed.signal(signal.SIGKILL, with_children=True)
    left = cluster.redis().ttl(RESTORE_MUTEX)
    assert left > 0, left  # the lock outlives its holder
    cluster.worker("w2", concurrency=1)
    timeout = float(cluster.settings["visibility_timeout"])
    poll(lambda: len(cluster.rows("starts", message.window_key)) == 2, timeout + 20,
         f"the message back (the dead worker's mutex had {left}s left)")  # fmt: skip
    cluster.wait_state(message, {"succeeded"}, 40)
    check(cluster, [message.window_key]).assert_ok(cluster.logs())
