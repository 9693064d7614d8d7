"""Scenarios 3-5: warm/cold/soft shutdown mid-run; repeated deliveries while a run goes on.

A visibility-timeout redelivery is a second copy of the same message; the tests publish that
copy themselves at the moment it matters (kombu's own sweep is slow: see
test_s02_running_worker_redelivers_within_visibility_timeout).
"""

from __future__ import annotations

import signal

import pytest

from tests.faults.harness import Cluster, JobDecl, poll, unacked_expired, window_message
from tests.faults.oracle import check

pytestmark = pytest.mark.faults


@pytest.mark.injects("SIGTERM (warm shutdown) of a prefork worker mid-run")
def test_s03_warm_shutdown_finishes(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 2}, "lease_ttl": 2})])
    worker = cluster.worker("w1", concurrency=1)
    message = window_message("slow", 0)
    cluster.publish(message)
    poll(lambda: cluster.rows("starts"), 30, "the run to start")
    worker.signal(signal.SIGTERM)
    worker.popen.wait(30)
    assert cluster.state(message) == "succeeded", cluster.logs()
    assert cluster.queue_empty()
    check(cluster, [message.window_key]).assert_ok(cluster.logs())


@pytest.mark.injects("SIGQUIT (cold shutdown) of a prefork worker mid-run, restart")
def test_s03_cold_shutdown_reexecutes_once(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 2}, "lease_ttl": 2})])
    worker = cluster.worker("w1", concurrency=1)
    message = window_message("slow", 0)
    cluster.publish(message)
    poll(lambda: cluster.rows("starts"), 30, "the run to start")
    worker.signal(signal.SIGQUIT)
    worker.popen.wait(30)
    assert not cluster.rows("effects")
    poll(lambda: unacked_expired(cluster), 30, "the visibility timeout to pass")
    cluster.worker("w2", concurrency=1)
    cluster.wait_state(message, {"succeeded"}, 30)
    assert len(cluster.rows("starts")) == 2
    poll(cluster.queue_empty, 15, "the message to be acknowledged")
    check(cluster, [message.window_key]).assert_ok(cluster.logs())


@pytest.mark.injects("SIGTERM of the asyncio-pool worker past its shutdown timeout (soft)")
def test_s03_soft_shutdown_reexecutes_once(cluster: Cluster) -> None:
    cluster.settings["shutdown_timeout"] = 1
    cluster.write_jobs([JobDecl("slow", asynchronous=True,
                                options={"config": {"seconds": 4}, "lease_ttl": 2})])  # fmt: skip
    worker = cluster.worker("a1", asynchronous=True)
    message = window_message("slow", 0)
    cluster.publish(message, asynchronous=True)
    poll(lambda: cluster.rows("starts"), 30, "the run to start")
    worker.signal(signal.SIGTERM)
    worker.popen.wait(30)
    assert not cluster.rows("effects")
    poll(lambda: unacked_expired(cluster), 30, "the visibility timeout to pass")
    cluster.worker("a2", asynchronous=True)
    cluster.wait_state(message, {"succeeded"}, 30)
    assert len(cluster.rows("starts")) == 2
    poll(cluster.queue_empty, 15, "the message to be acknowledged")
    check(cluster, [message.window_key]).assert_ok(cluster.logs())


@pytest.mark.injects("retry backoff longer than the visibility timeout; a second delivery "
                     "reaches a second worker")
def test_s04_backoff_longer_than_visibility_timeout(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("flaky", options={
        "config": {"seconds": 0.2, "fail_attempts": 1}, "lease_ttl": 2, "max_retries": 3,
        "backoff_base": 8, "backoff_cap": 8})])  # fmt: skip
    first = cluster.worker("w1", concurrency=1)
    message = window_message("flaky", 0)
    cluster.publish(message)
    poll(lambda: cluster.rows("starts"), 30, "the first attempt")
    second = cluster.worker("w2", concurrency=1)
    cluster.publish(message)  # what the broker redelivers once the visibility timeout passed
    cluster.wait_state(message, {"succeeded", "failed"}, 40)
    poll(lambda: "duplicate" in first.text() + second.text(), 20, "the copy to be a duplicate")
    poll(cluster.queue_empty, 15, "both deliveries to be acknowledged")
    assert cluster.state(message) == "succeeded"
    check(cluster, [message.window_key]).assert_ok(cluster.logs())


@pytest.mark.injects("a run longer than the visibility timeout; its redelivery on a second worker")
def test_s05_run_longer_than_visibility_timeout(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("long", options={"config": {"seconds": 8}, "lease_ttl": 2})])
    first = cluster.worker("w1", concurrency=1)
    message = window_message("long", 0)
    cluster.publish(message)
    poll(lambda: cluster.rows("starts"), 30, "the run to start")
    second = cluster.worker("w2", concurrency=1)
    cluster.publish(message)
    poll(lambda: "duplicate" in second.text(), 30, "the second delivery to be a duplicate")
    assert len(cluster.rows("starts")) == 1  # never two concurrent runs of one window
    cluster.wait_state(message, {"succeeded"}, 30)
    assert len(cluster.rows("starts")) == 1, first.text()
    poll(cluster.queue_empty, 15, "both deliveries to be acknowledged")
    check(cluster, [message.window_key]).assert_ok(cluster.logs())
