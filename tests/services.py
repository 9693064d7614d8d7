"""Reaching the real services in tests: skipped locally when missing, a failure under CI=true.

Override the targets with ``AGENTCRON_TEST_REDIS_URL`` and ``AGENTCRON_TEST_POSTGRES_URL`` (so
that parallel runs can use their own Redis database and PostgreSQL database).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("AGENTCRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "AGENTCRON_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Skip locally; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.05, what: str = "") -> None:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds pass (then fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 15) -> None:
    """Stop a process: ``sig``, up to ``grace`` seconds to exit, then SIGKILL."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def redis_server(tmp: Path, *extra: str) -> Iterator[str]:
    """A private redis-server on a free port (for fault tests); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server binary")
    port = free_port()
    proc = subprocess.Popen(
        [binary or "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import redis

        client = redis.Redis(port=port)
        wait_for(lambda: _pings(client), what=f"redis-server on {port}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def reset_postgres(url: str) -> None:
    """Drop and recreate the public schema of a (private) test database."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sqlalchemy.text("CREATE SCHEMA public"))
    engine.dispose()


def _pings(client: object) -> bool:
    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except Exception:
        return False
