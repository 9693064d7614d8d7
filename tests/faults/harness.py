"""The fault-injection harness: a private redis-server, real celery workers and beats, signals.

A :class:`Cluster` lives in one test's tmp folder. It writes a tiny schedule file and an agents
module (each execution of an agent writes one row into ``effects.sqlite``), starts
``redis-server`` on a port it keeps (so the broker can be stopped and restarted on the same
port), starts ``celery -A workers.app worker|beat`` subprocesses with ``AGENTCRON_*`` settings,
and injects faults with signals. :mod:`tests.faults.oracle` then checks the promise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from agentcron.ledger.store import Ledger
from agentcron.messages import ASYNC_TASK, SYNC_TASK, RunMessage
from agentcron.windows import window_key
from tests.services import free_port, missing

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

AGENTS = '''
"""Agents of the fault tests: every execution leaves rows in effects.sqlite."""
import asyncio, os, signal, sqlite3, time

DB = os.environ["FAULTS_EFFECTS_DB"]
STEP = 0.05


def _write(table, ctx, note=""):
    conn = sqlite3.connect(DB, timeout=60)
    try:
        with conn:
            conn.execute(f"insert into {table} (window_key, job, pid, attempt, at, note) "
                         "values (?, ?, ?, ?, ?, ?)",
                         (ctx.window_key, ctx.job, os.getpid(), ctx.attempt, time.monotonic(), note))
    finally:
        conn.close()


def _plan(ctx):
    _write("starts", ctx)
    if ctx.config.get("poison"):
        os.kill(os.getpid(), signal.SIGKILL)
    if ctx.attempt <= int(ctx.config.get("fail_attempts", 0)):
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return int(float(ctx.config.get("seconds", 0.2)) / STEP)


def _finish(ctx):
    ctx.raise_if_cancelled()  # never a side effect after the run was told to stop
    if ctx.config.get("report"):  # kept (and delivered) only if this attempt succeeds
        ctx.report(f"report of {ctx.window_key}", f"attempt {ctx.attempt}")
    _write("effects", ctx)
    return {"window": ctx.window_key}


def work(ctx):
    steps = _plan(ctx)
    for _ in range(steps):
        ctx.raise_if_cancelled()
        if ctx.config.get("ignore_soft_limit"):
            try:
                time.sleep(STEP)
            except BaseException:
                time.sleep(STEP)
        else:
            time.sleep(STEP)
    return _finish(ctx)


async def awork(ctx):
    steps = _plan(ctx)
    for _ in range(steps):
        ctx.raise_if_cancelled()
        await asyncio.sleep(STEP)
    return _finish(ctx)


def alert(report):
    conn = sqlite3.connect(DB, timeout=60)
    try:
        with conn:
            conn.execute("insert into alerts (window_key, state, error) values (?, ?, ?)",
                         (report.window_key, report.state, report.error or ""))
    finally:
        conn.close()
'''

TABLES = (
    "create table if not exists {name} (window_key text, job text, pid int, attempt int, "
    "at real, note text)"
)


@dataclass
class JobDecl:
    """One job of the test's schedule file (rendered as ``Job(...)``)."""

    name: str
    schedule: str = "@yearly"
    asynchronous: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        agent = "fault_agents:awork" if self.asynchronous else "fault_agents:work"
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (f"    Job({self.name!r}, agent={agent!r}, schedule={self.schedule!r}, "
                f"on_failure='fault_agents:alert'{extra}),\n")


def window_message(job: str, n: int, trigger: str = "manual") -> RunMessage:
    """The n-th hourly window of ``job`` from 2026-01-01 (manual: never a misfire)."""
    start = EPOCH + timedelta(hours=n)
    return RunMessage(job, window_key(job, start), start, start, trigger=trigger)


def children_of(pid: int) -> list[int]:
    """Direct child pids of ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def signal_pid(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid``, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Proc:
    """One celery subprocess with its log file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.popen, self.log = name, popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def children(self) -> list[int]:
        return children_of(self.pid)

    def family(self) -> list[int]:
        return [self.pid, *self.children()]

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, sig: int, with_children: bool = False) -> None:
        """Signal the main process (and its children: for kill -9 of the whole worker)."""
        kids = self.children() if with_children else []
        signal_pid(self.pid, sig)
        for kid in kids:
            signal_pid(kid, sig)

    def running(self) -> bool:
        return self.popen.poll() is None


class Cluster:
    """One test's broker, ledger, schedule, agents and celery processes."""

    def __init__(self, root: Path, database_url: str | None = None, **settings: Any) -> None:
        if shutil.which("redis-server") is None:
            missing("redis-server binary")
        self.root = root
        self.port = free_port()
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.redis_args: tuple[str, ...] = ()
        self.procs: list[Proc] = []
        self.database_url = database_url or f"sqlite:///{root / 'ledger.sqlite'}"
        self.effects_db = root / "effects.sqlite"
        self.settings = {"visibility_timeout": 6, "beat_leader_ttl": 3,
                         "beat_max_loop_interval": 0.5, "shutdown_timeout": 5,
                         "schedule_refresh_interval": 1} | settings  # fmt: skip
        self._publisher: Any = None
        self._ledger: Ledger | None = None
        self._init_effects()

    # -- setup --------------------------------------------------------------------------------

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _init_effects(self) -> None:
        conn = sqlite3.connect(self.effects_db)
        with conn:
            conn.execute("pragma journal_mode=wal")
            for name in ("starts", "effects"):
                conn.execute(TABLES.format(name=name))
            conn.execute("create table if not exists alerts (window_key text, state text, error text)")
        conn.close()

    def write_jobs(self, jobs: Iterable[JobDecl]) -> None:
        """Write the schedule file and the agents module."""
        (self.root / "fault_agents.py").write_text(AGENTS)
        body = "".join(job.render() for job in jobs)
        (self.root / "schedule.py").write_text(f"from agentcron import Job\n\nJOBS = [\n{body}]\n")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCRON_")}
        env.update({
            "AGENTCRON_BROKER_URL": self.broker_url,
            "AGENTCRON_DATABASE_URL": self.database_url,
            "AGENTCRON_SCHEDULE_PATH": str(self.root / "schedule.py"),
            "AGENTCRON_DATA_DIR": str(self.root),
            "FAULTS_EFFECTS_DB": str(self.effects_db),
            "PYTHONPATH": f"{ROOT}{os.pathsep}{self.root}",
        })  # fmt: skip
        env.update({f"AGENTCRON_{k.upper()}": str(v) for k, v in self.settings.items()})
        # FAULTS_WORKER_ENV="AGENTCRON_SYNC_SETTLE=main,AGENTCRON_SYNC_PREFETCH=4": run the
        # scenarios against an opt-in path (the scenario's own settings still win)
        for pair in filter(None, os.environ.get("FAULTS_WORKER_ENV", "").split(",")):
            name, _, value = pair.partition("=")
            if name.startswith("AGENTCRON_") and f"{name[10:].lower()}" not in self.settings:
                env[name] = value
        env.update(extra)
        return env

    # -- redis --------------------------------------------------------------------------------

    def start_redis(self, *args: str) -> None:
        """Start (or restart) redis-server on this cluster's port."""
        self.redis_args = args or self.redis_args
        binary = shutil.which("redis-server") or "redis-server"
        self.redis_proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.root), "--appendonly", "no", *self.redis_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        poll(self._pings, 15, f"redis-server on {self.port}")

    def stop_redis(self, sig: int = signal.SIGKILL) -> None:
        """Stop redis-server (SIGKILL: a crash; SIGTERM: a clean stop)."""
        if self.redis_proc is not None:
            self.redis_proc.send_signal(sig)
            self.redis_proc.wait(15)
            self.redis_proc = None

    def _pings(self) -> bool:
        try:
            return bool(self.redis().ping())
        except redis.RedisError:
            return False

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=2, socket_timeout=5)

    # -- processes ----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        log = self.root / f"{name}.{len(self.procs)}.log"
        out = open(log, "wb")  # noqa: SIM115 - closed with the process
        popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, *, asynchronous: bool = False, concurrency: int = 2,
               ready: bool = True, environ: Mapping[str, str] | None = None,
               **extra: str) -> Proc:  # fmt: skip
        """Start a ``celery worker`` on the sync (prefork) or the async queue (``environ`` and
        ``extra``: more environment)."""
        queue = "agentcron.async" if asynchronous else "agentcron.sync"
        env = self.env(**{**(environ or {}), **extra})
        if asynchronous:
            env["AGENTCRON_WORKER_POOL"] = "async"
        argv = [CELERY, "-A", "workers.app", "worker", "-Q", queue, "-n", f"{name}@faults",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"]
        if not asynchronous:
            argv += ["-c", str(concurrency)]
        proc = self._spawn(name, argv, env)
        if ready:
            poll(lambda: "ready." in proc.text() or not proc.running(), 60, f"worker {name}")
            assert proc.running(), proc.text()[-3000:]
        return proc

    def beat(self, name: str = "beat", **extra: str) -> Proc:
        """Start a ``celery beat`` (agentcron's scheduler)."""
        argv = [CELERY, "-A", "workers.app", "beat", "-l", "INFO",
                "-s", str(self.root / f"{name}-schedule.db"), "--pidfile", ""]
        return self._spawn(name, argv, self.env(**extra))

    def stop(self, proc: Proc, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL the whole family if it does not exit in time."""
        if proc.running():
            proc.signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.signal(signal.SIGKILL, with_children=True)
                proc.popen.wait(10)

    def close(self) -> None:
        """Stop every process and the broker."""
        for proc in self.procs:
            if proc.running():
                proc.signal(signal.SIGCONT, with_children=True)
                proc.signal(signal.SIGKILL, with_children=True)
                proc.popen.wait(10)
        if self._ledger is not None:
            self._ledger.close()
        self.stop_redis()

    # -- publishing and reading ---------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.database_url, auto_migrate=True)
        return self._ledger

    def publisher(self) -> Any:
        if self._publisher is None:
            from celery import Celery

            from agentcron.settings import Settings
            from workers.app import celery_config

            app = Celery("faults-publisher")
            settings = Settings.from_env({k: v for k, v in self.env().items()
                                          if k.startswith("AGENTCRON_")})  # fmt: skip
            app.conf.update(celery_config(settings))
            self._publisher = app
        return self._publisher

    def publish(self, message: RunMessage, asynchronous: bool = False) -> None:
        """Record the window 'scheduled', then publish its run message."""
        from agentcron.ledger.records import NewWindow

        self.ledger.record_scheduled([NewWindow(message.job, message.window_start,
                                                message.window_key, message.slot, message.trigger)])
        task, queue = (ASYNC_TASK, "agentcron.async") if asynchronous else (SYNC_TASK, "agentcron.sync")
        self.publisher().send_task(task, kwargs=message.to_kwargs(), queue=queue)

    def rows(self, table: str, window: str | None = None) -> list[tuple[Any, ...]]:
        """Rows of an effects table: (window_key, job, pid, attempt, at, note)."""
        conn = sqlite3.connect(self.effects_db, timeout=30)
        try:
            query = f"select window_key, job, pid, attempt, at, note from {table}"
            if window is None:
                return list(conn.execute(query))
            return list(conn.execute(query + " where window_key = ?", (window,)))
        finally:
            conn.close()

    def alerts(self) -> list[tuple[str, str, str]]:
        conn = sqlite3.connect(self.effects_db, timeout=30)
        try:
            return list(conn.execute("select window_key, state, error from alerts"))
        finally:
            conn.close()

    def state(self, message: RunMessage) -> str | None:
        record = self.ledger.get(message.job, message.window_start)
        return None if record is None else record.state.value

    def wait_state(self, message: RunMessage, states: Iterable[str], timeout: float) -> str:
        wanted = set(states)
        return str(poll(lambda: (s := self.state(message)) in wanted and s, timeout,
                        f"{message.window_key} to reach {sorted(wanted)} (now {self.state(message)})"))

    def queue_empty(self) -> bool:
        """No message waiting and none unacknowledged on the broker."""
        client = self.redis()
        try:
            waiting = client.llen("agentcron.sync") + client.llen("agentcron.async")
            return waiting == 0 and client.hlen("unacked") == 0
        finally:
            client.close()

    def logs(self) -> str:
        return "\n".join(f"==== {p.log.name}\n{p.text()[-4000:]}" for p in self.procs)


def describe(text: str) -> str:
    """A docstring-like text collapsed to one line (for FAULTS.md)."""
    return " ".join(textwrap.dedent(text).split())


def unacked_expired(cluster: Cluster) -> bool:
    """True once every unacknowledged message is older than the visibility timeout."""
    client = cluster.redis()
    try:
        newest = client.zrange("unacked_index", -1, -1, withscores=True)
    finally:
        client.close()
    if not newest:
        return True
    timeout = float(cluster.settings["visibility_timeout"])
    return float(newest[0][1]) + timeout < time.time()


def aware(when: datetime) -> datetime:
    """``when`` as an aware UTC datetime (SQLite hands back naive ones)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def recorded(cluster: Cluster, job: str) -> list[Any]:
    """Every ledger row of ``job``."""
    return cluster.ledger.list_runs(job, limit=100_000)


def all_terminal(cluster: Cluster, jobs: Iterable[str]) -> bool:
    """True when every recorded window of ``jobs`` has a terminal row."""
    return all(r.state.terminal for job in jobs for r in recorded(cluster, job))


def slot_windows(cluster: Cluster, job: str, schedule: str, until: datetime | None = None) -> list[str]:
    """Every slot window of ``job`` from its first recorded slot to its last (or ``until``)."""
    from tests.faults.oracle import expected_windows

    slots = sorted(aware(r.slot) for r in recorded(cluster, job))
    if not slots:
        return []
    end = (until or slots[-1]) + timedelta(milliseconds=1)
    return expected_windows(schedule, job, slots[0], end)


def fresh_message(job: str, n: int = 0) -> RunMessage:
    """A manual window whose slot is now (+ n seconds): waits and misfire deadlines are live."""
    from agentcron.clock import SYSTEM_CLOCK

    start = SYSTEM_CLOCK.now().replace(microsecond=0) + timedelta(seconds=n)
    return RunMessage(job, window_key(job, start), start, start, trigger="manual")
