"""Issue 13 items 3 and 10: every CLI command, with the database down or the broker down (a closed
port, a rediss:// closed port, a port that accepts connections and never answers), prints one
line and exits 1 (or succeeds if it needs no such service) within 10 s: never a traceback, never
a hang. The time is an upper bound with a generous margin, not a benchmark."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from agentcron.cli import main
from agentcron.cli.celery_agents import agents
from tests.integration.workers_support import CELERY, ROOT
from tests.services import free_port

pytestmark = pytest.mark.integration
BOUND = 10.0 + 20.0  # 10 s for the service; starting celery's CLI alone takes 4 s on a busy machine
SCHEDULE = '''
from agentcron import Job

def hello(ctx):
    return "hi"

JOBS = [Job("hello", agent="beat_schedule:hello", schedule="@hourly")]
'''
RANGE = ("--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T03:00:00Z")
# Arguments that make each command reach its services; a command missing here fails the test.
AGENTCRON = {
    "next": ("next", "@hourly"),
    "validate": ("validate", "beat_schedule.py"),
    "db upgrade": ("db", "upgrade"),
    "runs": ("runs",),
    "runs show": ("runs", "show", "hello@2026-01-01T00:00:00Z"),
    "dead-letters": ("dead-letters",),
    "web": ("web",),
    "spend": ("spend",),
    "limits": ("limits",),
    "reports": ("reports",),
    "reports show": ("reports", "show", "1"),
    "deliveries": ("deliveries",),
    "deliveries retry": ("deliveries", "retry", "1"),
    "schedules add": ("schedules", "add", "added", "--agent", "beat_schedule:hello",
                      "--schedule", "5m"),
    "schedules list": ("schedules", "list"),
    "schedules pause": ("schedules", "pause", "hello"),
    "schedules resume": ("schedules", "resume", "hello"),
    "schedules remove": ("schedules", "remove", "hello"),
    "trigger": ("trigger", "hello"),
    "up": ("up", "--data-dir", "up-data"),
    "check": ("check",),
    "status": ("status",),
    "backfill": ("backfill", "hello", *RANGE),
    "jobs": ("jobs",),
}  # fmt: skip
LEDGER_ONLY = ("web",)  # serves the ledger's pages; with the broker down it starts (and runs on)
AGENTS = {
    "list": ("list",), "next": ("next", "@hourly"), "runs": ("runs",), "trigger": ("trigger", "hello"),
    "pause": ("pause", "hello"), "resume": ("resume", "hello"), "check": ("check",),
    "backfill": ("backfill", "hello", *RANGE), "status": ("status",),
    "runs show": ("runs", "show", "hello@2026-01-01T00:00:00Z"), "dead-letters": ("dead-letters",),
    "reports": ("reports",), "reports show": ("reports", "show", "1"), "deliveries": ("deliveries",),
    "deliveries retry": ("deliveries", "retry", "1"),
}  # fmt: skip


def _leaves(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            if command.invoke_without_command:  # a command of its own too (`runs`)
                names.append(f"{prefix}{name}")
            names += _leaves(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_every_command_is_covered() -> None:
    assert sorted(_leaves(main)) == sorted(AGENTCRON)
    assert sorted(_leaves(agents)) == sorted(AGENTS)


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[str, int, str, float]:
    started = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    return " ".join(argv[-4:]), done.returncode, done.stderr, time.monotonic() - started


def _commands(with_celery: bool, skip: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command of ``agentcron`` and (the same click commands) of ``celery … agents``."""
    python = [sys.executable, "-m", "agentcron.cli"]
    celery = [CELERY, "-A", "workers.app", "agents"]
    return [*(python + list(a) for name, a in AGENTCRON.items() if name not in skip),
            *(celery + list(a) for a in AGENTS.values() if with_celery)]  # fmt: skip


def _check_all(tmp_path: Path, env_extra: dict[str, str], with_celery: bool = False,
               skip: tuple[str, ...] = ()) -> list[str]:  # fmt: skip
    (tmp_path / "beat_schedule.py").write_text(SCHEDULE)
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCRON_")}
    env.update(PYTHONPATH=f"{tmp_path}:{ROOT}", AGENTCRON_SCHEDULE_PATH=str(tmp_path / "beat_schedule.py"),
               AGENTCRON_DATA_DIR=str(tmp_path / "data"), **env_extra)  # fmt: skip
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda argv: _run(argv, env, tmp_path), _commands(with_celery, skip)))
    failures = []
    for what, code, stderr, took in results:
        lines = [line for line in stderr.splitlines() if " INFO " not in line]
        if "Traceback" in stderr or took > BOUND or code not in (0, 1, 2):
            failures.append(f"{what}: exit {code} after {took:.1f}s: {stderr[-600:]}")
        elif code != 0 and (len(lines) != 1 or not lines[0].startswith("error")):
            failures.append(f"{what}: exit {code}, not one error line: {lines}")
    return failures


def test_database_down(tmp_path: Path, silent_port: int) -> None:
    closed = free_port()
    for url, with_celery in ((f"postgresql+psycopg://postgres@127.0.0.1:{closed}/agentcron", True),
                             (f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/agentcron", False)):
        failures = _check_all(tmp_path, {"AGENTCRON_DATABASE_URL": url,
                                         "AGENTCRON_BROKER_URL": f"sqla+sqlite:///{tmp_path}/b.sqlite"},
                              with_celery)  # fmt: skip
        assert not failures, "\n".join(failures)


def test_broker_down(tmp_path: Path, silent_port: int) -> None:
    closed = free_port()
    for url, with_celery in ((f"redis://127.0.0.1:{closed}/0", True),
                             (f"rediss://127.0.0.1:{closed}/0", False),
                             (f"redis://127.0.0.1:{silent_port}/0", False)):
        failures = _check_all(tmp_path, {"AGENTCRON_BROKER_URL": url,
                                         "AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.sqlite"},
                              with_celery, skip=LEDGER_ONLY)  # fmt: skip
        assert not failures, "\n".join(failures)
