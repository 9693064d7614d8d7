"""What a benchmark ran on: library and server versions, CPU, load, the commit.

Every reading degrades to a short text ("not installed", "unreachable: …") instead of raising:
the table must still be written when, say, PostgreSQL is down.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("celery", "kombu", "redis", "hiredis", "psycopg", "sqlalchemy")
LABELS = {"redis": "redis-py", "sqlalchemy": "SQLAlchemy"}


def package_version(name: str) -> str:
    """The installed version of ``name``, or ``not installed``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model(cpuinfo: str | None = None) -> str:
    """The ``model name`` of /proc/cpuinfo (or of ``cpuinfo``), else the platform's."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return (one, five, fifteen)


def commit(root: Path = ROOT) -> str:
    """The short commit of ``root``, ``+dirty`` when the tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, check=True, capture_output=True, text=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty.strip() else head


def _guarded(read: Callable[[], str]) -> str:
    try:
        return read()
    except Exception as error:  # any driver error: the table says so and goes on
        return f"unreachable: {type(error).__name__}"


def postgres_version(url: str) -> str:
    """``SHOW server_version`` of the server at the SQLAlchemy ``url``."""

    def read() -> str:
        import psycopg

        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    return _guarded(read)


def redis_version(url: str) -> str:
    """``redis_version`` from ``INFO server`` of the server at ``url``."""

    def read() -> str:
        import redis

        client: Any = redis.Redis.from_url(url, socket_timeout=5)
        return str(client.info("server").get("redis_version", "unknown"))

    return _guarded(read)


def arq_environment(python: Path) -> str | None:
    """``arq X, redis-py Y`` of arq's environment, or None when it has no arq."""
    if not python.exists():
        return None
    code = ("import importlib.metadata as m; "
            "print(f\"arq {m.version('arq')}, redis-py {m.version('redis')}\")")  # fmt: skip
    try:
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                              check=False, timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def collect(postgres_url: str, redis_url: str) -> dict[str, str]:
    """Every environment fact of the table, by label (in table order)."""
    facts = {"Python": platform.python_version()}
    facts |= {LABELS.get(name, name): package_version(name) for name in PACKAGES}
    facts["PostgreSQL server"] = postgres_version(postgres_url)
    facts["Redis server"] = redis_version(redis_url)
    facts["CPU"] = f"{cpu_model()} x {os.cpu_count() or 0}"
    facts["commit"] = commit()
    facts["MALLOC_ARENA_MAX"] = os.environ.get("MALLOC_ARENA_MAX", "unset (glibc default)")
    return facts
