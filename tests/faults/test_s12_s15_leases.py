"""Scenarios 12-15: paused holders, leaked leases, renewal, and compare-and-delete release."""

from __future__ import annotations

import signal
import time

import pytest

from agentcron import keys
from agentcron.leases.redis import RedisLeaseStore
from tests.faults.harness import Cluster, JobDecl, fresh_message, poll, unacked_expired, window_message
from tests.faults.oracle import check

pytestmark = pytest.mark.faults



@pytest.mark.injects("worker kill -STOP while it holds the window's lease; the redelivery runs on "
                     "another worker; kill -CONT")
def test_s12_paused_holder_is_fenced(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 3}, "lease_ttl": 2})])
    paused = cluster.worker("wa", concurrency=1)
    message = window_message("slow", 0)
    cluster.publish(message)
    poll(lambda: cluster.rows("starts"), 30, "the run to start")
    paused.signal(signal.SIGSTOP, with_children=True)
    other = cluster.worker("wb", concurrency=1)
    cluster.publish(message)  # the visibility-timeout redelivery
    poll(lambda: len(cluster.rows("starts")) == 2, 30, "the redelivery to take over")
    client = cluster.redis()
    taken = client.get(keys.lease("slow"))
    assert taken is not None
    paused.signal(signal.SIGCONT, with_children=True)
    poll(lambda: "fenced" in paused.text() or "lost" in paused.text(), 30,
         "the stale holder to be fenced or cancelled")  # fmt: skip
    held = client.get(keys.lease("slow"))
    assert held in (None, taken), "the stale holder released the new holder's lease"
    cluster.wait_state(message, {"succeeded"}, 30)
    poll(cluster.queue_empty, 15, "both deliveries to be acknowledged")
    verdict = check(cluster, [message.window_key])
    verdict.assert_ok(cluster.logs())
    assert "succeeded" in other.text()


@pytest.mark.injects("whole worker kill -9 while holding a job lease (buffer_all); "
                     "the next window waits for the leaked lease")
def test_s13_leaked_lease_expires_within_ttl(cluster: Cluster) -> None:
    # The run must outlast w2's start-up (~2 s on a loaded machine): killed while idle, w1 would
    # hold no lease, and a worker killed inside BRPOP can swallow the next message (Redis hands
    # it to the dead connection; the ledger's row stays 'scheduled' for the watchdog).
    cluster.write_jobs([JobDecl("slow", options={"config": {"seconds": 6}, "lease_ttl": 2,
                                                 "overlap": "buffer_all"})])  # fmt: skip
    doomed = cluster.worker("w1", concurrency=1)
    first, second = fresh_message("slow", 0), fresh_message("slow", 1)
    cluster.publish(first)
    poll(lambda: cluster.rows("starts"), 30, "the run to start")
    cluster.worker("w2", concurrency=1)
    assert cluster.state(first) == "running", "the first run ended before w1 could be killed"
    doomed.signal(signal.SIGKILL, with_children=True)
    killed_at = time.monotonic()
    cluster.publish(second)
    started = poll(lambda: cluster.rows("starts", second.window_key), 30, "the next window")
    blocked = started[0][4] - killed_at
    assert blocked <= 2 + 1.5, f"next window blocked {blocked:.1f}s by a leaked 2 s lease"
    cluster.wait_state(second, {"succeeded"}, 30)
    poll(lambda: unacked_expired(cluster), 30, "the visibility timeout")
    cluster.worker("w3", concurrency=1)
    cluster.wait_state(first, {"succeeded"}, 30)
    check(cluster, [first.window_key, second.window_key]).assert_ok(cluster.logs())


@pytest.mark.injects("async run past its job timeout (asyncio timeout)")
def test_s13_async_timeout_recorded(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("hang", asynchronous=True,
                                options={"config": {"seconds": 5}, "timeout": 1})])  # fmt: skip
    cluster.worker("a1", asynchronous=True)
    message = window_message("hang", 0)
    cluster.publish(message, asynchronous=True)
    assert cluster.wait_state(message, {"timeout", "succeeded"}, 30) == "timeout"
    poll(cluster.queue_empty, 15, "the message to be acknowledged")
    check(cluster, [message.window_key]).assert_ok(cluster.logs())


@pytest.mark.injects("sync run past its job timeout (interval timer on the prefork child main thread)")
def test_s13_sync_time_limit_recorded_timeout(cluster: Cluster) -> None:
    cluster.write_jobs([JobDecl("hang", options={"config": {"seconds": 4}, "timeout": 1})])
    cluster.worker("w1", concurrency=1)
    message = window_message("hang", 0)
    cluster.publish(message)
    assert cluster.wait_state(message, {"timeout", "succeeded", "failed"}, 30) == "timeout"


@pytest.mark.injects("a run 3x longer than its lease TTL (renewal); then the lease key taken over "
                     "mid-run by another owner (renewal fails)")
def test_s14_renewal_keeps_the_lease_or_cancels(cluster: Cluster) -> None:
    cluster.write_jobs([
        JobDecl("long", options={"config": {"seconds": 4.5}, "lease_ttl": 1.5}),
        JobDecl("cut", asynchronous=True, options={"config": {"seconds": 4.5}, "lease_ttl": 1.5}),
    ])  # fmt: skip
    cluster.worker("w1", concurrency=2)
    cluster.worker("a1", asynchronous=True)
    long_run, cut_run = window_message("long", 0), window_message("cut", 0)
    cluster.publish(long_run)
    poll(lambda: cluster.rows("starts", long_run.window_key), 30, "the long run")
    cluster.publish(long_run)  # a second delivery while the lease is renewed
    client = cluster.redis()
    samples = []
    while not cluster.rows("effects", long_run.window_key):
        samples.append(client.pttl(keys.lease("long")))
        time.sleep(0.1)
    assert samples and all(ms > 0 for ms in samples[:-3]), samples
    assert cluster.wait_state(long_run, {"succeeded"}, 10) == "succeeded"
    assert len(cluster.rows("starts", long_run.window_key)) == 1
    cluster.publish(cut_run, asynchronous=True)
    poll(lambda: cluster.rows("starts", cut_run.window_key), 30, "the run to start")
    # another owner takes the lease over (a lease that merely vanished is reacquired: S21)
    client.set(keys.lease("cut"), "999999:intruder", px=20_000)
    assert cluster.wait_state(cut_run, {"cancelled", "succeeded"}, 20) == "cancelled"
    assert not cluster.rows("effects", cut_run.window_key)
    poll(cluster.queue_empty, 15, "every delivery to be acknowledged")
    check(cluster, [long_run.window_key, cut_run.window_key]).assert_ok(cluster.logs())


@pytest.mark.injects("A's lease expires, B acquires, A releases (real Redis)")
def test_s15_unsafe_release_is_refused(cluster: Cluster) -> None:
    store = RedisLeaseStore(cluster.redis())
    first = store.acquire("s15", "A", 0.3)
    assert first is not None
    poll(lambda: store.holder("s15") is None, 5, "A's lease to expire", interval=0.05)
    second = store.acquire("s15", "B", 30)
    assert second is not None and second.token > first.token
    assert not store.renew(first, 30)
    assert not store.release(first)
    assert store.holder("s15") == second
    assert store.release(second) and store.holder("s15") is None
