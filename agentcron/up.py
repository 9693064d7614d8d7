"""``agentcron up``: beat, a sync worker and an async worker on this machine, shown live.

With no configuration everything is embedded in ``--data-dir``: kombu's SQLAlchemy transport over
SQLite as the broker, a SQLite ledger and SQL leases; no server to install. With
``AGENTCRON_BROKER_URL`` / ``AGENTCRON_DATABASE_URL`` the same three processes use Redis and
PostgreSQL. The children are plain ``celery -A workers.app ...`` processes; their logs go to
``<data-dir>/logs``. Every ~2 s the ledger is polled and new or changed runs are printed, with the
next fire time of every job (:mod:`agentcron.up_view`). SIGINT or SIGTERM stops the children
gracefully (SIGTERM: warm shutdown), prints their run statistics and a ledger summary, and
returns 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.delivery.service import describe_delivery
from agentcron.jobs import JobSpec
from agentcron.ledger.engine import sqlite_path
from agentcron.ledger.store import Ledger
from agentcron.private_files import private_dir, private_file
from agentcron.schedule_file import load_jobs
from agentcron.settings import Settings, redact_url
from agentcron.up_stats import combine, describe, parse_stats
from agentcron.up_view import RunWatcher, describe_next

if TYPE_CHECKING:
    from agentcron.console.server import ConsoleServer

Echo = Callable[[str], None]
FIRST_RUN_WAIT = 60.0  # seconds to wait for the workers before sending the first runs anyway
WORKER_KINDS = {"worker-sync": "sync worker (prefork)", "worker-async": "async worker (event loop)"}


@dataclass(frozen=True)
class Child:
    """One process ``up`` runs: a name, its command line and extra environment."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def plan(settings: Settings, python: str = sys.executable) -> list[Child]:
    """The three children for ``settings``: beat, the sync worker, the async worker."""
    celery = (python, "-m", "celery", "-A", "workers.app")
    common = ("--without-gossip", "--without-mingle", "-l", "INFO")
    sync_args = ("-c", str(settings.sync_concurrency)) if settings.sync_concurrency else ()
    return [
        Child("beat", (*celery, "beat", "-l", "INFO",
                       "-s", str(settings.data_dir / "celerybeat-schedule"))),
        Child("worker-sync", (*celery, "worker", "-Q", "agentcron.sync", "-n", "sync@%h",
                              *sync_args, *common)),
        Child("worker-async", (*celery, "worker", "-Q", "agentcron.async", "-n", "async@%h",
                               *common), {"AGENTCRON_WORKER_POOL": "async"}),
    ]  # fmt: skip


class Supervisor:
    """Starts the children, shows what happens, and stops everything on request."""

    def __init__(
        self, settings: Settings, echo: Echo, clock: Clock = SYSTEM_CLOCK,
        children: Sequence[Child] | None = None, refresh: float = 2.0, *,
        web_port: int = 0, first_run: bool = False,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.web_port = web_port
        self.first_run = first_run
        self._console: ConsoleServer | None = None
        self.echo = echo
        self.clock = clock
        self.children = list(children if children is not None else plan(settings))
        self.refresh = refresh
        self.stop_requested = threading.Event()
        self.log_dir = settings.data_dir / "logs"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self._log_start: dict[str, int] = {}

    def request_stop(self, *_: Any) -> None:
        """Signal handler: ask :meth:`run` to shut down (safe to call more than once)."""
        self.stop_requested.set()

    def run(self) -> int:
        """Run until stopped; 0 after a clean shutdown, 1 if a child died on its own."""
        private_dir(self.settings.data_dir, tighten=True)  # 0700: ledger, broker, logs
        private_dir(self.log_dir)
        broker = sqlite_path(self.settings.broker_url.removeprefix("sqla+"))
        if self.settings.embedded and broker is not None:
            private_file(broker)  # 0600 before kombu creates it
        ledger = Ledger.from_settings(self.settings, self.clock)
        ledger.upgrade()
        specs = load_jobs(self.settings.schedule_path, self.settings.config_max_bytes)
        console_url = self._start_console()
        self._banner(specs, console_url)
        self._start_children()
        first_pending, since = self.first_run, self.clock.monotonic()
        watcher = RunWatcher(ledger)
        status = 0
        try:
            while not self.stop_requested.wait(self.refresh):
                if first_pending and (self._workers_ready()
                                      or self.clock.monotonic() - since > FIRST_RUN_WAIT):
                    first_pending = False
                    self._first_windows(specs, ledger)
                for line in watcher.changes():
                    self.echo(line)
                dead = [name for name, proc in self._procs.items() if proc.poll() is not None]
                if dead:
                    self.echo(f"child process(es) exited unexpectedly: {', '.join(dead)}")
                    status = 1
                    break
        finally:
            if self._console is not None:
                self._console.stop()
            self.shutdown()
            for line in watcher.changes():
                self.echo(line)
            self._summary(ledger)
            ledger.close()
        return status

    def _banner(self, specs: Sequence[JobSpec], console_url: str | None) -> None:
        mode = "embedded (SQLite broker, ledger and leases)" if self.settings.embedded else (
            f"broker {redact_url(self.settings.broker_url)}, "
            f"ledger {redact_url(self.settings.database_url)}")
        self.echo(f"agentcron up: {len(specs)} job(s) from {self.settings.schedule_path}; {mode}")
        if console_url:
            self.echo(f"console: {console_url}")
        example = specs[0].name if specs else "JOB"
        self.echo(f"run a job now: agentcron trigger {example}  (in another terminal"
                  f"{', or its Trigger button in the console' if console_url else ''})")
        self.echo(f"logs in {self.log_dir}; Ctrl-C stops everything")
        self.echo(describe_delivery(self.settings))
        for line in describe_next(specs, self.clock):
            self.echo(line)

    def _start_console(self) -> str | None:
        """Serve the console on 127.0.0.1:web_port (None when off or the port is taken)."""
        if not self.web_port:
            return None
        from agentcron.console import ConsoleServer, create_app, new_token
        from agentcron.console.server import login_url
        from agentcron.runtime import Runtime

        token = self.settings.web_token or new_token()
        runtime = Runtime(self.settings, self.clock)
        app = create_app(runtime, token, readonly=self.settings.web_readonly)
        server = ConsoleServer(app, "127.0.0.1", self.web_port)
        if not server.start():
            self.echo(f"console not started: 127.0.0.1:{self.web_port} is in use "
                      "(--web-port N picks another, 0 none)")  # fmt: skip
            runtime.close()
            return None
        self._console = server
        return login_url("127.0.0.1", self.web_port, token)

    def _workers_ready(self) -> bool:
        """Whether a live worker consumes each of the two default queues (heartbeats)."""
        from agentcron.jobs import ASYNC_QUEUE, SYNC_QUEUE
        from agentcron.watch.heartbeats import WORKER, open_heartbeats

        try:
            alive = open_heartbeats(self.settings, self.clock).alive(WORKER)
        except Exception:
            return False
        consumed = {queue for beat in alive for queue in beat.queues}
        return {SYNC_QUEUE, ASYNC_QUEUE} <= consumed

    def _first_windows(self, specs: Sequence[JobSpec], ledger: Ledger) -> None:
        """Run the current window of every enabled job that has never run, so a first start
        shows each job working within a minute (deduped like ``agentcron trigger``). Sent once
        the workers are up: the embedded broker delivers a message queued before its consumer
        started twice (the guard drops the second, but the statistics would count it)."""
        from celery import Celery

        from agentcron.beat.factory import open_publisher
        from agentcron.cli.trigger import trigger

        fresh = [s for s in specs if s.job.enabled and not ledger.list_runs(job=s.name, limit=1)]
        if not fresh:
            return
        app = Celery("agentcron-up", broker=self.settings.broker_url)
        app.conf.update(task_serializer="json", accept_content=["json"])
        try:
            publisher = open_publisher(app, self.settings)
            for spec in fresh:
                trigger(spec, ledger, publisher, self.clock, force=False)
        except Exception as exc:  # the broker does not answer: the beat's schedule still runs
            self.echo(f"first runs not sent ({type(exc).__name__})")
            return
        self.echo(f"first run of {len(fresh)} job(s) that never ran: "
                  f"{', '.join(s.name for s in fresh)}")

    def _start_children(self) -> None:
        env = {**os.environ, **self.settings.environment()}
        for child in self.children:
            log = open(self.log_dir / f"{child.name}.log", "ab")  # noqa: SIM115 - closed later
            self._logs.append(log)
            self._log_start[child.name] = log.tell()
            self._procs[child.name] = subprocess.Popen(
                list(child.argv), env={**env, **child.env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.echo(f"started {child.name} (pid {self._procs[child.name].pid})")

    def shutdown(self) -> None:
        """SIGTERM every child (warm shutdown), wait, then kill what is left."""
        self.echo("stopping: warm shutdown of beat and workers ...")
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = self.clock.monotonic() + self.settings.shutdown_timeout + 15
        for name, proc in self._procs.items():
            try:
                proc.wait(max(deadline - self.clock.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.echo(f"{name} did not stop in time: killed")
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()

    def _summary(self, ledger: Ledger) -> None:
        for child in self.children:
            path = self.log_dir / f"{child.name}.log"
            if child.name not in WORKER_KINDS or not path.exists():
                continue
            with path.open("rb") as log:
                log.seek(self._log_start.get(child.name, 0))
                text = log.read().decode(errors="replace")
            found = [stats for line in text.splitlines() if (stats := parse_stats(line))]
            if found:
                self.echo(describe(WORKER_KINDS[child.name], *combine(found)))
        try:
            counts = ledger.count_by_state()
        except Exception as exc:  # the ledger is gone: say so, do not trace
            self.echo(f"ledger: unreadable ({type(exc).__name__})")
            return
        summary = ", ".join(f"{state}={n}" for state, n in sorted(counts.items())) or "no runs"
        self.echo(f"ledger: {sum(counts.values())} window(s): {summary}")
