"""The Celery app: ``celery -A workers.app worker|beat|flower``.

Sync worker:  ``celery -A workers.app worker -Q agentcron.sync`` (prefork children).
Async worker: ``AGENTCRON_WORKER_POOL=async celery -A workers.app worker -Q agentcron.async``
(the app configuration selects :class:`workers.pool.AsyncIOPool`: one event loop per process,
``Settings.async_concurrency`` runs in flight), or
``CELERY_CUSTOM_WORKER_POOL=workers.pool:AsyncIOPool celery -A workers.app worker -P custom``.

The settings are the ones design.md's anchors require: late acks, reject on a lost worker (the
ledger's attempt count caps redeliveries), prefetch multiplier 1, a visibility timeout longer than
any time limit, cancelling long-running tasks on a lost connection, JSON only, UTC.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from kombu.entity import Queue

from agentcron.eviction import eviction_warning, exit_if_evicting
from agentcron.flower_auth import check_flower
from agentcron.jobs import ASYNC_QUEUE, SYNC_QUEUE
from agentcron.messages import ASYNC_TASK, SYNC_TASK
from agentcron.secrets import install_log_scrubber
from agentcron.settings import Settings, is_redis_url
from agentcron.timeouts import broker_options
from workers import sqla_transport
from workers.operate import register as register_operations

log = logging.getLogger("agentcron.workers")
__all__ = ["app", "celery_config", "eviction_warning", "settings", "sync_prefetch"]
ASYNC_POOL = "workers.pool:AsyncIOPool"
TRANSPORT = "workers.transport:Transport"

settings = Settings.from_env()


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for ``settings``."""
    # kombu's SQLAlchemy transport hands its options to create_engine(): Redis options only.
    bounds = broker_options(settings)  # connect and socket timeouts: a dead broker is an error
    transport: dict[str, Any] = dict(bounds.pop("broker_transport_options", {}))
    if is_redis_url(settings.broker_url):
        transport["visibility_timeout"] = settings.visibility_timeout
        # kombu sweeps unacked messages back every interval x throttle seconds (default ~100 s):
        # make a dead worker's messages return about one visibility timeout after it died.
        interval = max(1, min(10, int(settings.visibility_timeout / 4)))
        transport["unacked_restore_interval"] = interval
        transport["unacked_restore_throttle"] = 1
        # Every sweep takes kombu's restore mutex for milliseconds; a worker killed (or cut off
        # from Redis) while holding it left it for kombu's 300 s, and no worker restored a dead
        # one's messages meanwhile. Concurrent sweeps are safe (each restore is a WATCH
        # transaction): the mutex only spares work, so it expires after three sweeps.
        transport["unacked_mutex_expire"] = 3 * interval
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        **bounds,
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "task_reject_on_worker_lost": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Celery's consumer plus a guard: a lost Redis connection is torn down without an
        # AttributeError that would make the worker exit (workers/consumer.py, bug C).
        "worker_consumer": "workers.consumer:Consumer",
        "accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "timezone": "UTC",
        "enable_utc": True,
        "task_ignore_result": True,
        "task_queues": (Queue(SYNC_QUEUE), Queue(ASYNC_QUEUE)),  # type: ignore[no-untyped-call]
        "task_default_queue": SYNC_QUEUE,
        "task_routes": {SYNC_TASK: {"queue": SYNC_QUEUE}, ASYNC_TASK: {"queue": ASYNC_QUEUE}},
        "worker_send_task_events": False,  # Flower turns them on (enable_events) when it runs
        "task_send_sent_event": True,
        "worker_hijack_root_logger": True,
        "agentcron_shutdown_timeout": settings.shutdown_timeout,
        "beat_scheduler": "workers.beat:AgentcronScheduler",
        "beat_max_loop_interval": settings.beat_max_loop_interval,
    }
    if settings.broker_url.startswith("redis://"):
        config["broker_transport"] = TRANSPORT  # kombu's, with batched delivery and acks
    if settings.extra.get("AGENTCRON_WORKER_POOL") == "async":
        config["worker_pool"] = ASYNC_POOL
        config["worker_concurrency"] = settings.async_concurrency
        config["agentcron_delivery_interval"] = settings.delivery_interval  # outbox sender
    else:
        if settings.sync_concurrency:
            config["worker_concurrency"] = settings.sync_concurrency
        config["worker_prefetch_multiplier"] = sync_prefetch(settings)
        if claims_in_main(settings):  # the main process runs threads: a child forked from it
            config["worker_pool_start_method"] = "spawn"  # could inherit a held lock
    return config


def sync_prefetch(settings: Settings) -> int:
    """``AGENTCRON_SYNC_PREFETCH`` (opt-in, default 1): messages a prefork worker reserves per
    child. Above 1, with ``AGENTCRON_SYNC_SETTLE=main``, a child that returns gets its next
    message at once while the main process records the run it returned (``workers.settle``);
    a reserved message waits behind the running ones (for as long as they run). With
    ``AGENTCRON_SYNC_CLAIM=main`` the main process claims what it reserves (``workers.claims``):
    above 1, short runs go faster and a reserved message dies with its worker (bench/RESULTS.md,
    scenarios S05 and S13)."""
    text = settings.extra.get("AGENTCRON_SYNC_PREFETCH", "1")
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise SystemExit(f"AGENTCRON_SYNC_PREFETCH must be a whole number from 1 to 1000, "
                         f"not {text[:40]!r}")  # fmt: skip
    return int(text)


def claims_in_main(settings: Settings) -> bool:
    """``AGENTCRON_SYNC_CLAIM=main``: a prefork worker's main process guards the sync runs and
    its children only run the agents (``workers.claims``); ``child`` (default): each child
    guards the run it executes."""
    value = settings.extra.get("AGENTCRON_SYNC_CLAIM", "child")
    if value not in ("main", "child"):
        raise SystemExit(f"AGENTCRON_SYNC_CLAIM must be main or child, not {value[:40]!r}")
    return value == "main"


sqla_transport.install()  # the embedded broker's poison rows go to dead letters, too
app = Celery("agentcron", include=["workers.tasks"])
app.conf.update(celery_config(settings))
register_operations(app, settings)  # watchdog task, heartbeats, metrics server, pings


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _refuse_eviction(**_: Any) -> None:
    """Workers refuse an evicting Redis (broker and leases) at start (beat: workers/beat.py)."""
    exit_if_evicting(settings)


# Flower through this app: never without authentication (agentcron.flower_auth).
signals.import_modules.connect(check_flower, weak=False)


@signals.after_setup_logger.connect  # type: ignore[untyped-decorator]
@signals.after_setup_task_logger.connect  # type: ignore[untyped-decorator]
def _scrub_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    """Every log line of beat and workers goes through the secret scrubber."""
    install_log_scrubber(logger)


@signals.before_task_publish.connect  # type: ignore[untyped-decorator]
def _hide_arguments(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Flower and logs show a run's job and window only, never its arguments."""
    if headers is None or headers.get("task") not in (SYNC_TASK, ASYNC_TASK):
        return
    kwargs = headers.get("kwargsrepr") or ""
    headers["argsrepr"] = "()"
    headers["kwargsrepr"] = _short_repr(kwargs)


# What it does, the beat's pipelined publisher does itself (agentcron.beat.factory).
_hide_arguments.agentcron_internal = True


def _short_repr(kwargsrepr: str) -> str:
    import ast

    try:
        data = ast.literal_eval(kwargsrepr)
    except (ValueError, SyntaxError):
        return "{}"
    if not isinstance(data, dict):
        return "{}"
    return repr({k: data[k] for k in ("job", "window_key") if k in data})
