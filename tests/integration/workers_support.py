"""Plain Celery tasks and worker-process helpers for the worker tests (no tests here).

Workers started by these tests import this module with ``-I``; each task records what happened
in the test Redis database, which the test reads back.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from tests.services import REDIS_URL, stop, wait_for

os.environ.setdefault("AGENTCRON_BROKER_URL", REDIS_URL)  # before the app reads its settings

from workers.app import app
from workers.pool import defer

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def _store() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("AGENTCRON_TEST_REDIS_URL", REDIS_URL))


async def _sleep_and_count(seconds: float, key: str) -> str:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _store().rpush(f"{key}:cancelled", threading.current_thread().name)
        raise
    _store().rpush(key, threading.current_thread().name)
    return "done"


@app.task(name="tests.sleep_async", runs_on_loop=True)  # type: ignore[untyped-decorator]
def sleep_async(seconds: float, key: str) -> Any:
    """Sleep on the worker's loop, then record the thread that ran it."""
    _store().rpush(f"{key}:started", "1")
    return defer(_sleep_and_count(seconds, key))


@app.task(name="tests.sleep_sync")  # type: ignore[untyped-decorator]
def sleep_sync(seconds: float, key: str) -> str:
    """A blocking task: sleeps in its thread, then records that thread."""
    time.sleep(seconds)
    _store().rpush(key, threading.current_thread().name)
    return "done"


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    redis_url = os.environ.get("AGENTCRON_TEST_REDIS_URL", REDIS_URL)
    # The test agents read AGENTCRON_TEST_REDIS_URL themselves: pass the default on too.
    env.update({"AGENTCRON_BROKER_URL": redis_url, "AGENTCRON_TEST_REDIS_URL": redis_url,
                "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


@contextmanager
def celery_worker(
    *args: str, env: dict[str, str] | None = None, log: Path | None = None,
    heartbeat: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` subprocess; stopped (SIGTERM, then SIGKILL) on exit."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [CELERY, "-A", "workers.app", "worker", "--without-gossip", "--without-mingle",
         *(() if heartbeat else ("--without-heartbeat",)), "-l", "INFO", *args],
        cwd=ROOT, env=env or worker_env(), stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield proc
    finally:
        stop(proc, grace=30)
        if log:
            out.close()  # type: ignore[union-attr]


def use_broker(url: str) -> None:
    """Point this process's app at ``url`` (if another module imported it first)."""
    if app.conf.broker_url != url:
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None


def wait_ready(hostname: str, timeout: float = 30.0) -> None:
    """Poll until the worker named ``hostname`` answers a ping."""
    wait_for(lambda: bool(app.control.ping(destination=[hostname], timeout=0.5)),
             timeout=timeout, what=f"worker {hostname} to answer ping")
