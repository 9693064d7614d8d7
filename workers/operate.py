"""Operations wiring for the Celery processes: watchdog task, heartbeats, metrics, pings.

- :func:`register` (called once by ``workers.app``) adds the ``agentcron.watchdog`` task and
  connects worker signals: a heartbeat thread and the metrics server in each worker's main
  process, a ``start`` ping per run, prefork children marked dead for multiprocess metrics.
- :class:`BeatOps` (driven by ``workers.beat``): the beat's heartbeat (with whether it leads),
  the watchdog task sent every ``watchdog_interval`` while leading, queue-depth gauges, the
  beat's emission lag and its metrics server.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.jobs import ASYNC_QUEUE, SYNC_QUEUE
from agentcron.messages import ASYNC_TASK, SYNC_TASK
from agentcron.settings import Settings
from agentcron.watch.heartbeats import BEAT, WORKER, Heartbeater, open_heartbeats, process_heartbeat
from agentcron.watch.queued import queue_depths
from agentcron.watch.watchdog import WATCHDOG_TASK

if TYPE_CHECKING:
    from agentcron.beat.service import BeatService

log = logging.getLogger("agentcron.operate")
_STATE: dict[str, Any] = {}


def run_watchdog_task() -> str:
    """The body of the ``agentcron.watchdog`` task: one pass in this worker."""
    from agentcron.runtime import get_runtime
    from agentcron.watch.watchdog import run_watchdog

    app = _STATE["app"]
    return run_watchdog(get_runtime(), app).summary()


def register(app: Any, settings: Settings) -> None:
    """Add the watchdog task and the worker signal handlers to ``app`` (idempotent)."""
    if _STATE.get("app") is app:
        return
    _STATE["app"], _STATE["settings"] = app, settings
    app.task(name=WATCHDOG_TASK, ignore_result=True)(run_watchdog_task)
    from celery import signals

    signals.worker_ready.connect(_worker_ready, weak=False, dispatch_uid="agentcron-ops-ready")
    signals.worker_shutdown.connect(_worker_shutdown, weak=False,
                                    dispatch_uid="agentcron-ops-shutdown")  # fmt: skip
    signals.worker_process_shutdown.connect(_child_exit, weak=False,
                                            dispatch_uid="agentcron-ops-child")  # fmt: skip
    signals.task_prerun.connect(_start_ping, weak=False, dispatch_uid="agentcron-ops-prerun")


def _worker_ready(sender: Any = None, **_: Any) -> None:
    settings: Settings = _STATE["settings"]
    app = _STATE["app"]
    hostname = getattr(sender, "hostname", None) or "worker"
    try:
        queues = sorted(app.amqp.queues.consume_from)
    except Exception:
        queues = [SYNC_QUEUE, ASYNC_QUEUE]
    store = open_heartbeats(settings, SYSTEM_CLOCK)
    beater = Heartbeater(store, lambda: process_heartbeat(WORKER, hostname, SYSTEM_CLOCK, queues),
                         settings.heartbeat_interval, settings.heartbeat_ttl, SYSTEM_CLOCK)
    beater.start()
    _STATE["heartbeater"] = beater
    if settings.metrics_port:
        from agentcron.series import serve

        try:
            serve(settings.metrics_port, settings.metrics_addr)
        except OSError as exc:
            log.warning("metrics port %d not served (%s)", settings.metrics_port, exc)


def _worker_shutdown(**_: Any) -> None:
    beater = _STATE.pop("heartbeater", None)
    if beater is not None:
        beater.stop()


def _child_exit(pid: int | None = None, **_: Any) -> None:
    from agentcron.series import multiprocess_mode

    if pid and multiprocess_mode():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _start_ping(task: Any = None, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    if getattr(task, "name", None) not in (SYNC_TASK, ASYNC_TASK) or not kwargs:
        return
    settings: Settings = _STATE["settings"]
    if not settings.ping_urls:
        return
    from agentcron.alerts import safe_alerter

    alerter = _STATE.get("alerter") or safe_alerter(settings)
    _STATE["alerter"] = alerter
    alerter.ping(str(kwargs.get("job", "")), "start")


class BeatOps:
    """What the beat process does besides emitting: heartbeat, watchdog, gauges, metrics."""

    def __init__(self, app: Any, service: BeatService, settings: Settings | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:  # fmt: skip
        from agentcron.watch.metrics import MeteredPublisher

        self.app = app
        self.service = service
        self.settings = settings or Settings.from_env()
        self.clock = clock
        self.ident = getattr(getattr(service, "leader", None), "owner", None) or "beat"
        emitter = service.emitter
        emitter.publisher = MeteredPublisher(emitter.publisher, clock)
        self.heartbeater = Heartbeater(open_heartbeats(self.settings, clock), self._describe,
                                       self.settings.heartbeat_interval,
                                       self.settings.heartbeat_ttl, clock)  # fmt: skip
        self.heartbeater.start()
        self._next_watch = clock.monotonic() + min(self.settings.watchdog_interval, 10.0)
        if self.settings.metrics_port:
            from agentcron.series import serve

            try:
                serve(self.settings.metrics_port, self.settings.metrics_addr)
            except OSError as exc:
                log.warning("metrics port not served (%s)", exc)

    def _describe(self) -> Any:
        from agentcron.series import get_metrics

        leading = bool(self.service.active)
        get_metrics().beat_leader.set(1 if leading else 0)
        return process_heartbeat(BEAT, self.ident, self.clock, leader=leading)

    def tick(self) -> float:
        """Send the watchdog task when due (leader only); seconds until the next call."""
        now = self.clock.monotonic()
        interval = self.settings.watchdog_interval
        if interval <= 0:
            return 60.0
        if now >= self._next_watch:
            self._next_watch = now + interval
            if self.service.active and not getattr(self.service.emitter, "owed", False):  # broker down
                self._watch()
        return max(self._next_watch - now, 0.0)

    def _watch(self) -> None:
        from agentcron.series import set_queue_depths, set_queue_workers

        queues = [SYNC_QUEUE, ASYNC_QUEUE]
        try:
            self.app.send_task(WATCHDOG_TASK, queue=SYNC_QUEUE, retry=False)
            set_queue_depths(queue_depths(self.app, queues))
            workers = dict.fromkeys(queues, 0)
            for beat in self.heartbeater.store.alive(WORKER):
                for queue in beat.queues:
                    workers[queue] = workers.get(queue, 0) + 1
            set_queue_workers(workers)
        except Exception as exc:
            log.warning("watchdog not sent (%s)", type(exc).__name__)

    def close(self) -> None:
        """Stop the heartbeat (and remove it: a clean exit)."""
        self.heartbeater.stop()
