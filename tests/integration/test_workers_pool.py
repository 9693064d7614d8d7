"""The asyncio pool in a real ``celery worker`` process against the real Redis."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workers_support import (
    celery_worker,
    sleep_async,
    sleep_sync,
    use_broker,
    wait_ready,
    worker_env,
)
from tests.services import wait_for
from workers.app import app

pytestmark = pytest.mark.integration
POOL = ["-Q", "agentcron.async"]
BY_CONFIG = {"AGENTCRON_WORKER_POOL": "async"}  # the app configuration selects the pool
BY_OPTION = {"CELERY_CUSTOM_WORKER_POOL": "workers.pool:AsyncIOPool"}  # with -P custom


@pytest.fixture
def broker(redis_client: Any, redis_url: str) -> Iterator[Any]:
    use_broker(redis_url)
    yield redis_client


@pytest.fixture
def worker(broker: Any, tmp_path: Path) -> Iterator[Any]:
    with celery_worker(*POOL, "-c", "500", "-n", "pool@test",
                       "-I", "tests.integration.workers_support",
                       env=worker_env(**BY_CONFIG), log=tmp_path / "worker.log") as proc:
        wait_ready("pool@test")
        yield proc


def _count(client: Any, key: str) -> int:
    return int(client.llen(key))


def test_many_async_runs_in_flight_on_one_loop(worker: Any, broker: Any) -> None:
    # 300 runs of 1 s each: serially 300 s; on one loop they overlap and finish in a few seconds.
    for _ in range(300):
        sleep_async.apply_async((1.0, "many"), queue="agentcron.async")
    wait_for(lambda: _count(broker, "many") == 300, timeout=20, what="300 async runs")
    threads = {name.decode() for name in broker.lrange("many", 0, -1)}
    assert threads == {"agentcron-loop"}


def test_sync_task_on_async_pool_runs_in_a_thread_without_blocking_the_loop(
    worker: Any, broker: Any
) -> None:
    for _ in range(4):
        sleep_sync.apply_async((3.0, "blocking"), queue="agentcron.async")
    sleep_async.apply_async((0.1, "quick"), queue="agentcron.async")
    wait_for(lambda: _count(broker, "quick") == 1, timeout=2.5, what="the async run")
    assert _count(broker, "blocking") == 0  # still sleeping in executor threads
    wait_for(lambda: _count(broker, "blocking") == 4, timeout=10, what="sync runs")
    assert all(b"loop" not in name for name in broker.lrange("blocking", 0, -1))


def test_hard_time_limit_cancels_a_hung_run_without_blocking_others(
    worker: Any, broker: Any
) -> None:
    sleep_async.apply_async((3600.0, "hung"), queue="agentcron.async", time_limit=1)
    wait_for(lambda: _count(broker, "hung:started") == 1, timeout=5, what="hung run start")
    for _ in range(20):
        sleep_async.apply_async((0.2, "others"), queue="agentcron.async")
    wait_for(lambda: _count(broker, "others") == 20, timeout=5, what="other runs")
    wait_for(lambda: _count(broker, "hung:cancelled") == 1, timeout=5, what="hung run cancel")
    # acknowledged: nothing left on the queue or unacked
    wait_for(lambda: broker.llen("agentcron.async") == 0 and not broker.hlen("unacked"),
             timeout=5, what="queue and unacked empty")


def test_revoke_terminate_cancels_the_coroutine(worker: Any, broker: Any) -> None:
    result = sleep_async.apply_async((3600.0, "revoked"), queue="agentcron.async")
    wait_for(lambda: _count(broker, "revoked:started") == 1, timeout=5, what="run start")
    app.control.revoke(result.id, terminate=True, destination=["pool@test"])
    wait_for(lambda: _count(broker, "revoked:cancelled") == 1, timeout=5, what="cancel")
    wait_for(lambda: not broker.hlen("unacked"), timeout=5, what="ack")


def test_sigterm_drains_runs_in_flight(broker: Any, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with celery_worker(*POOL, "-P", "custom", "-c", "100", "-n", "drain@test",
                       "-I", "tests.integration.workers_support",
                       env=worker_env(**BY_OPTION), log=log) as proc:
        wait_ready("drain@test")
        for _ in range(50):
            sleep_async.apply_async((2.0, "drain"), queue="agentcron.async")
        wait_for(lambda: _count(broker, "drain:started") == 50, timeout=5, what="50 starts")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert _count(broker, "drain") == 50
    assert _count(broker, "drain:cancelled") == 0
    assert broker.llen("agentcron.async") == 0 and not broker.hlen("unacked")
