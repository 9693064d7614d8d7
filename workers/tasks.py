"""The two run tasks: thin wrappers that parse the message and hand it to the guard.

A malformed message or an unknown job is logged and acknowledged (the task returns normally), so
it never loops through redeliveries. ``agentcron.run_async`` defers its coroutine to the asyncio
pool (:func:`workers.pool.defer`), which awaits it on the worker's one event loop.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from celery import signals
from celery.exceptions import SoftTimeLimitExceeded

from agentcron.admission import Admitted, admit, confirm_async
from agentcron.messages import ASYNC_TASK, SYNC_TASK
from agentcron.settings import Settings
from agentcron.signing import signed_kwargs
from workers import claims, settle
from workers.app import app, claims_in_main
from workers.app import settings as worker_settings
from workers.in_child import executor_loaders
from workers.pool import defer

if TYPE_CHECKING:
    from agentcron.guard import Outcome
    from agentcron.jobs import JobSpec
    from agentcron.messages import RunMessage
    from agentcron.runtime import Runtime

log = logging.getLogger("agentcron.tasks")
_BUILT: dict[str, Runtime] = {}
_LOCK = threading.Lock()
_CHILD: dict[str, Any] = {}  # in a prefork child: "defer" (its runs are settled by the main)


def worker_runtime() -> Runtime:
    """This process's runtime; Celery's soft time limit counts as the job's timeout."""
    from agentcron.runtime import Runtime, set_runtime
    from agentcron.watch.metrics import install as install_metrics

    with _LOCK:
        if "runtime" not in _BUILT:
            runtime = Runtime(Settings.from_env(), timeout_errors=(SoftTimeLimitExceeded,),
                              **_CHILD.get("runtime_options", {}))  # fmt: skip
            set_runtime(runtime)
            install_metrics(runtime.guard, runtime.ledger)  # run metrics, pings, failure alerts
            runtime.guard.defer_settlement = bool(_CHILD.get("defer")) and settles_in_main()
            _BUILT["runtime"] = runtime
        return _BUILT["runtime"]


def settles_in_main() -> bool:
    """``AGENTCRON_SYNC_SETTLE=main``: prefork children leave their runs' completions and lease
    releases to the main process (:mod:`workers.settle`); ``child`` (default): they write them."""
    return worker_settings.extra.get("AGENTCRON_SYNC_SETTLE", "child") == "main"


def prepare(kwargs: dict[str, Any]) -> tuple[Runtime, JobSpec, RunMessage] | None:
    """Parse, verify and place a delivery (:func:`agentcron.admission.admit`); None when it
    was refused (logged once, acknowledged, not run)."""
    admitted = admit(kwargs, worker_runtime)
    return None if admitted is None else admitted.parts()


def _requeue_sync(spec: JobSpec, message: RunMessage, outcome: Outcome) -> None:
    requeue(SYNC_TASK, spec, message, outcome)


def requeue(task: str, spec: JobSpec, message: RunMessage, outcome: Outcome) -> None:
    """Publish the window again, later, when it waited in vain for a fleet-wide limit (before
    this delivery is acknowledged: late, not lost; same window key)."""
    if outcome.requeue_after is not None:
        key = worker_runtime().settings.signing_key
        kwargs = signed_kwargs(message, key) if key else message.to_kwargs()
        app.send_task(task, kwargs=kwargs, queue=spec.queue,
                      countdown=outcome.requeue_after, argsrepr="()",
                      kwargsrepr=message.short())  # fmt: skip


def summary(outcome: Outcome) -> dict[str, Any]:
    """What the task returns (and Flower shows): the state and a short text, no result."""
    state = outcome.state.value if outcome.state is not None else None
    return {"state": state, "duplicate": outcome.duplicate, "attempts": outcome.attempts,
            "detail": outcome.detail}


@app.task(name=SYNC_TASK, Request="workers.settle:SettlingRequest")  # type: ignore[untyped-decorator]
def run_sync(**kwargs: Any) -> dict[str, Any] | None:
    """Run one window of a sync agent under the guard."""
    prepared = prepare(kwargs)
    if prepared is None:
        return None
    runtime, spec, message = prepared
    outcome = runtime.guard.run_sync(spec, message)
    if outcome.pending is not None:  # a prefork child: the main process records it
        return settle.Deferred(message, outcome)  # type: ignore[return-value]
    requeue(SYNC_TASK, spec, message, outcome)
    return summary(outcome)


async def _run_async(pending: Admitted) -> dict[str, Any] | None:
    admitted = await confirm_async(pending)  # what needs the ledger, off the event loop
    if admitted is None:
        return None
    runtime, spec, message = admitted.parts()
    outcome = await runtime.guard.run_async(spec, message)
    requeue(ASYNC_TASK, spec, message, outcome)
    return summary(outcome)


@app.task(name=ASYNC_TASK, runs_on_loop=True)  # type: ignore[untyped-decorator]
def run_async(**kwargs: Any) -> Any:
    """Run one window of an async agent on the worker's event loop under the guard."""
    admitted = admit(kwargs, worker_runtime, ask_ledger=False)
    if admitted is None:
        return None
    return defer(_run_async(admitted))


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]
def _after_fork(**_: Any) -> None:
    from agentcron.runtime import reset_runtime

    inherited = _BUILT.pop("runtime", None)
    if inherited is not None:  # forked from a main process that settles: not this child's
        inherited.ledger.engine.dispose(close=False)
        _CHILD["inherited"] = inherited  # kept referenced: collecting it would close its sockets
    reset_runtime()
    _CHILD["defer"] = True  # this child executes; the main process records (workers.settle)
    settle.install_in_child(app.tasks[SYNC_TASK])
    if claims_in_main(worker_settings):  # its jobs' specs read now, not when a store is down
        _CHILD["runtime_options"] = {"loaders": executor_loaders()}
        try:
            worker_runtime()
        except Exception as exc:  # the first attempt sent here tries again
            log.warning("runtime not ready at start (%s: %s)", type(exc).__name__, exc)


@signals.worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _stop_claiming(**_: Any) -> None:
    if claims.CLAIMS is not None and not _CHILD:
        claims.CLAIMS.stopping = True  # what arrives now runs in a child, as without claims


@signals.worker_process_shutdown.connect  # type: ignore[untyped-decorator]
@signals.worker_shutdown.connect  # type: ignore[untyped-decorator]
def _log_statistics(**_: Any) -> None:
    if settle.SETTLER is not None and not _CHILD:
        settle.SETTLER.stop()  # the runs still queued for settling are recorded first
    if claims.CLAIMS is not None and not _CHILD:
        claims.CLAIMS.stop(app.conf.agentcron_shutdown_timeout)
    runtime = _BUILT.get("runtime")
    if runtime is None:
        return
    stats = runtime.guard.stats()
    if (settle.SETTLER is not None and not _CHILD and app.conf.worker_pool == "prefork"
            and settles_in_main()):  # fmt: skip
        # a prefork worker's main process: it recorded what its children ran (agentcron.up_stats)
        stats.update(settled=settle.SETTLER.settled, settle_batches=settle.SETTLER.batches,
                     settle_thread_batches=settle.SETTLER.thread_batches)
    log.info("run statistics: %s", ", ".join(f"{k}={v:g}" for k, v in stats.items()))


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _ready(**_: Any) -> None:
    """Open the main process's runtime once its children are forked: it settles their runs,
    and must not first reach the stores when one is down (the runs would wait on it)."""
    if _CHILD or not (settles_in_main() or claims.CLAIMS is not None):
        return
    if settle.SETTLER is not None:  # children take their next message while runs settle
        settle.SETTLER.threaded = app.conf.worker_prefetch_multiplier > 1
    try:
        worker_runtime()
    except Exception as exc:  # the first settlement tries again
        log.warning("runtime not ready at start (%s: %s)", type(exc).__name__, exc)


settle.SETTLER = settle.Settler(worker_runtime, summary)
if claims_in_main(worker_settings) and app.conf.worker_pool == "prefork":
    claims.CLAIMS = claims.Claims(worker_runtime, summary, _requeue_sync)
