"""Scenario 21: an evicting Redis, Redis out of memory, a lease that vanishes (issue 20, item 3).

- Beat and workers refuse to start on a Redis whose ``maxmemory-policy`` can evict (the broker
  URL or ``AGENTCRON_REDIS_URL``), with one line naming the setting, unless
  ``AGENTCRON_ALLOW_EVICTION=1``.
- Redis at ``maxmemory`` (``noeviction``: every write gets an OOM reply): workers back off and
  keep running; beat keeps the windows recorded; they all run once memory frees.
- A lease evicted while its holder renews in time is reacquired with a fresh token (the ledger
  row still names the holder): the run goes on and succeeds instead of being cancelled.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest
import redis

from agentcron import keys
from tests.faults.harness import (
    Cluster,
    JobDecl,
    all_terminal,
    aware,
    poll,
    recorded,
    slot_windows,
    window_message,
)
from tests.faults.oracle import check
from tests.services import redis_server

pytestmark = pytest.mark.faults


def exited_refusing(proc: object, url_part: str) -> None:
    poll(lambda: not proc.running(), 60, f"{proc.name} to refuse to start")  # type: ignore[attr-defined]
    text = proc.text()  # type: ignore[attr-defined]
    assert proc.popen.returncode == 2, text[-3000:]  # type: ignore[attr-defined]
    assert "maxmemory-policy=allkeys-lru" in text and "AGENTCRON_ALLOW_EVICTION=1" in text, text[-3000:]
    assert url_part in text and "Traceback" not in text, text[-3000:]


@pytest.mark.injects("maxmemory-policy allkeys-lru on the broker, then on AGENTCRON_REDIS_URL only; "
                     "beat and workers started with and without AGENTCRON_ALLOW_EVICTION=1")
def test_s21_evicting_redis_refused_at_start(cluster: Cluster, tmp_path: Path) -> None:
    cluster.write_jobs([JobDecl("tick", schedule="*/2s")])
    client = cluster.redis()
    client.config_set("maxmemory", "200mb")
    client.config_set("maxmemory-policy", "allkeys-lru")
    exited_refusing(cluster.worker("w1", ready=False), f":{cluster.port}/0")
    exited_refusing(cluster.beat("beat"), f":{cluster.port}/0")
    allowed = cluster.worker("w2", AGENTCRON_ALLOW_EVICTION="1")
    assert "started anyway: AGENTCRON_ALLOW_EVICTION=1" in allowed.text()
    cluster.stop(allowed)
    client.config_set("maxmemory-policy", "noeviction")
    with redis_server(tmp_path, "--maxmemory", "200mb", "--maxmemory-policy", "allkeys-lru") as url:
        exited_refusing(cluster.worker("w3", ready=False, AGENTCRON_REDIS_URL=url), url)
    assert not cluster.ledger.list_runs(limit=10), "a refused beat recorded windows"


def fill(client: redis.Redis) -> None:
    """Hold 4 MB of filler and cap memory 1 MB below what is used: every write gets an OOM reply
    (noeviction) until the cap is lifted."""
    blob = b"x" * 65_536
    for n in range(64):
        client.set(f"filler:{n}", blob)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used - 1_000_000))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("filler:probe", b"x")


@pytest.mark.injects("redis-server at maxmemory (noeviction: OOM replies to every write) for ~8 s "
                     "under beat, a prefork and an asyncio worker, then memory freed")
def test_s21_out_of_memory_workers_back_off(cluster: Cluster) -> None:
    jobs = ("tick", "atick")
    options = {"config": {"seconds": 1.5}, "lease_ttl": 2, "overlap": "allow"}  # acks in OOM
    cluster.settings |= {"watchdog_interval": 2, "watchdog_min_age": 3}
    slow = {"config": {"seconds": 3}, "lease_ttl": 10}  # in flight when memory fills: acks in OOM
    cluster.write_jobs([*(JobDecl(name, schedule="*/2s", asynchronous=n == 1, options=options)
                          for n, name in enumerate(jobs)),
                        JobDecl("slow", options=slow),
                        JobDecl("aslow", asynchronous=True, options=slow)])  # fmt: skip
    workers = [cluster.worker("w1", concurrency=3), cluster.worker("a1", asynchronous=True)]
    beat = cluster.beat()
    poll(lambda: len(cluster.rows("effects")) >= 2, 60, "the first windows to run")
    runs = [window_message("slow", 0), window_message("aslow", 0)]
    cluster.publish(runs[0])
    cluster.publish(runs[1], asynchronous=True)
    for run in runs:
        poll(partial(cluster.rows, "starts", run.window_key), 30, f"{run.window_key} to start")
    client = cluster.redis()
    fill(client)
    full_at = time.time()
    poll(lambda: time.time() - full_at > 8, 15, "four periods out of memory", interval=0.5)
    for proc in [*workers, beat]:
        assert proc.running(), proc.text()[-4000:]
    client.config_set("maxmemory", "0")
    client.delete(*[f"filler:{n}" for n in range(64)])
    freed_at = time.time()
    poll(lambda: all(aware(r.slot).timestamp() > freed_at or r.state.terminal
                     for job in jobs for r in recorded(cluster, job)), 90,
         "every window of the full time to end")  # fmt: skip
    for proc in [*workers, beat]:
        assert proc.running(), proc.text()[-4000:]
        assert "Unrecoverable error" not in proc.text(), proc.text()[-4000:]
    cluster.stop(beat)
    poll(lambda: all_terminal(cluster, jobs), 60, "every recorded window to end")
    windows = [w for job in jobs for w in slot_windows(cluster, job, "*/2s")]
    verdict = check(cluster, windows + [r.window_key for r in runs])
    verdict.assert_ok(cluster.logs())
    assert verdict.succeeded == verdict.expected, verdict.summary() + "\n" + cluster.logs()[-8000:]


@pytest.mark.injects("the lease key of a running prefork and asyncio run deleted (evicted) mid-run")
def test_s21_evicted_lease_is_reacquired(cluster: Cluster) -> None:
    options = {"config": {"seconds": 3}, "lease_ttl": 1.5}
    cluster.write_jobs([JobDecl("long", options=options),
                        JobDecl("along", asynchronous=True, options=options)])  # fmt: skip
    cluster.worker("w1", concurrency=1)
    cluster.worker("a1", asynchronous=True)
    runs = [window_message("long", 0), window_message("along", 0)]
    cluster.publish(runs[0])
    cluster.publish(runs[1], asynchronous=True)
    for run in runs:
        poll(partial(cluster.rows, "starts", run.window_key), 30, f"{run.window_key} to start")
    client = cluster.redis()
    client.delete(keys.lease("long"), keys.lease("along"))
    for run in runs:
        assert cluster.wait_state(run, {"succeeded", "cancelled", "failed"}, 30) == "succeeded"
        row = cluster.ledger.get_by_key(run.window_key)
        assert row is not None and (row.token or 0) > 1  # moved to the fresh token
    assert "reacquired, token 1 -> 2" in cluster.logs()
    poll(cluster.queue_empty, 15, "every delivery to be acknowledged")
    poll(lambda: client.get(keys.lease("long")) is None and client.get(keys.lease("along")) is None,
         10, "the reacquired leases to be released")  # fmt: skip
    check(cluster, [r.window_key for r in runs]).assert_ok(cluster.logs())
