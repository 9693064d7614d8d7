"""Scenarios 1 and 2: a prefork child, then a whole worker, killed with SIGKILL mid-run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.harness import Cluster, JobDecl, poll, unacked_expired, window_message
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
