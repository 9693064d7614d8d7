"""The Celery app's guarantees: hidden arguments, dropped malformed messages, events, eviction."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentcron.messages import ASYNC_TASK, RunMessage
from tests.integration.workers_support import (
    celery_worker,
    sleep_async,
    use_broker,
    wait_ready,
    worker_env,
)
from tests.services import redis_server, wait_for
from workers.app import app, eviction_warning

pytestmark = pytest.mark.integration
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def broker(redis_client: Any, redis_url: str) -> Any:
    use_broker(redis_url)
    return redis_client


@pytest.fixture
def worker(broker: Any, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "worker.log"
    with celery_worker("-Q", "agentcron.async", "-n", "app@test",
                       "-I", "tests.integration.workers_support",
                       env=worker_env(AGENTCRON_WORKER_POOL="async"), log=log, heartbeat=True):
        wait_ready("app@test")
        yield log


def test_flower_sees_only_job_and_window(broker: Any) -> None:
    message = RunMessage("secret_job", "secret_job@2026-01-01T00:00:00Z", START, START)
    app.send_task(ASYNC_TASK, kwargs=message.to_kwargs(), queue="agentcron.async")
    raw = json.loads(broker.lrange("agentcron.async", 0, -1)[0])
    headers = raw["headers"]
    assert headers["argsrepr"] == "()"
    assert headers["kwargsrepr"] == repr({"job": "secret_job",
                                          "window_key": "secret_job@2026-01-01T00:00:00Z"})
    body = json.loads(base64.b64decode(raw["body"]))
    assert body[1]["window_key"] == message.window_key  # the task itself still gets everything


def test_a_malformed_message_is_acknowledged_and_logged(worker: Path, broker: Any) -> None:
    app.send_task(ASYNC_TASK, kwargs={"job": "x", "window_key": "not a key"},
                  queue="agentcron.async")
    refused = "refused run message not a key (job x): malformed run message"
    wait_for(lambda: refused in worker.read_text(), timeout=10, what="the drop to be logged")
    wait_for(lambda: broker.llen("agentcron.async") == 0 and not broker.hlen("unacked"),
             timeout=5, what="the message acknowledged")


def test_task_events_flow_from_the_asyncio_pool(worker: Path, broker: Any) -> None:
    # what Flower does when it connects (events are off by default)
    replies = app.control.enable_events(destination=["app@test"], reply=True)
    assert replies == [{"app@test": {"ok": "task events enabled"}}]
    seen: dict[str, set[str]] = {}
    conn = app.connection_for_read()
    receiver = app.events.Receiver(conn, handlers={
        "*": lambda event: seen.setdefault(event.get("uuid", ""), set()).add(event["type"])})
    thread = threading.Thread(target=lambda: receiver.capture(limit=None, timeout=None),
                              daemon=True)
    thread.start()
    wanted = {"task-received", "task-started", "task-succeeded"}

    def complete_story() -> bool:
        # fanout events sent before the receiver listens are lost: publish until one is seen
        if not any(wanted <= kinds for kinds in seen.values()):
            sleep_async.apply_async((0.05, "events"), queue="agentcron.async")
            return False
        return True

    try:
        wait_for(complete_story, timeout=15, interval=0.5, what="a task's events")
    finally:
        receiver.should_stop = True
        thread.join(5)
        conn.release()


def test_startup_warning_when_redis_can_evict(tmp_path: Path) -> None:
    with redis_server(tmp_path, "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru") as url:
        warning = eviction_warning(url)
    assert warning is not None and "allkeys-lru" in warning and "noeviction" in warning
    with redis_server(tmp_path, "--maxmemory-policy", "noeviction") as url:
        assert eviction_warning(url) is None
