"""Prefork children run; the worker's main process records their runs (opt-in, issue 18).

With ``AGENTCRON_SYNC_SETTLE=main`` a sync run's last two store calls, its fenced completion
and its lease release, leave the prefork child: the child stops at the end of the run (the
guard's ``defer_settlement``), its task returns a :class:`Deferred` (the completion request and
the lease it still holds) through the pool's result pipe, and the main process records it
(:meth:`agentcron.guard.run.Guard.settle`: completions in one ledger call, leases released in
one round trip, then statistics, observers and callbacks once per recorded outcome) and only
then acknowledges the message and sends Celery's *task-succeeded* event. The default
(``child``) keeps every write in the child: measured at prefetch multiplier 1, settling in the
main process serialises what two children did in parallel and is slower (bench/RESULTS.md).
With ``AGENTCRON_SYNC_PREFETCH`` above 1 (opt-in) the runs are recorded on one settling thread,
whatever has queued up in one batch, and answered back on the consumer's loop
(:class:`workers.mailbox.HubMailbox`), so a child takes its next reserved message while its
last run is recorded;
once Celery is stopping the worker (its loop may not turn again) the thread is drained and
the runs are answered from the main thread. A reserved message waits behind the running one
and dies with its worker (back after the visibility timeout, not the lease TTL). Claiming
in the main process ahead of the children is :mod:`workers.claims` (``AGENTCRON_SYNC_CLAIM``).

The hook is Celery's own: the task's ``Request`` class (:class:`SettlingRequest`). Celery builds
a subclass of it per task (``create_request_cls``) whose ``on_success`` acknowledges; ours wraps
that one, so a normal result (a duplicate, a refused message, a run settled in the child) takes
Celery's path unchanged. Celery's prefork tracer sends a task's result to the main process as a
``repr``; in a child, the run task's tracer is wrapped (:func:`install_in_child`) so that a
``Deferred`` crosses the pipe as itself (billiard pickles it).

What the guard promises still holds: until it is settled the run's row stays active under its
fencing token and its lease stays held, so a main process killed before settling leaves a message
that is not acknowledged (redelivered after the visibility timeout) and a lease that expires within
its TTL: the redelivery takes the window over (:mod:`agentcron.guard.stale`) or finds it done.
A completion fenced out by a newer holder is dropped, as in the child. The acknowledgement waits
for the ledger's commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.utils.saferepr import saferepr
from celery.worker.request import Request

from agentcron.guard import Outcome
from agentcron.messages import RunMessage
from workers.mailbox import HubMailbox, mailbox_for

log = logging.getLogger("agentcron.settle")
SETTLE_BATCH = 500
"""The most runs the settling thread records in one ledger statement."""
Answer = Callable[..., Any]


@dataclass(frozen=True)
class Deferred:
    """What a prefork child's run task returns when the main process must record the run."""

    message: RunMessage
    outcome: Outcome

    def __repr__(self) -> str:  # what Celery logs in the child: never the run's result
        state = self.outcome.state.value if self.outcome.state is not None else "none"
        return f"<{state}, recorded by the main process>"


@dataclass(frozen=True)
class _Returned:
    request: Request
    deferred: Deferred
    runtime: float
    answer: Answer


class Settler:
    """Records the runs prefork children returned: on the consumer's loop, or (``threaded``)
    on one settling thread that records whatever has queued up in one batch and answers
    Celery back on the consumer's loop (:class:`workers.mailbox.HubMailbox`)."""

    def __init__(self, runtime_of: Callable[[], Any], summary: Callable[[Outcome], Any]) -> None:
        self.runtime_of = runtime_of
        self.summary = summary
        self.batches = 0
        self.settled = 0
        self.thread_batches = 0  # of the batches, those recorded on the settling thread
        self.threaded = False  # set by workers.tasks when the worker prefetches beyond -c
        self._queue: queue.SimpleQueue[tuple[_Returned, HubMailbox] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._unanswered: list[tuple[_Returned, Any]] = []

    def add(self, returned: _Returned) -> None:
        """Settle ``returned`` before it is acknowledged (on the settling thread when
        ``threaded`` and the consumer's loop runs, else here and now). Once the worker is
        shutting down (its loop may not turn again) the thread is drained and everything is
        answered from here, as the children's last runs come back."""
        if self.threaded and _shutting_down():
            self.stop()
        hub = _hub() if self.threaded and not self._stopping else None
        if hub is None:
            self.settle([returned])
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._drain, name="agentcron-settler",
                                            daemon=True)  # fmt: skip
            self._thread.start()
        self._queue.put((returned, mailbox_for(hub)))  # answers go back as poll events

    def stop(self, timeout: float = 30.0) -> None:
        """Record what is queued, answer it from this thread, and end the settling thread
        (worker shutdown); from now on runs are settled where they return."""
        self._stopping = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
        with self._lock:
            unanswered, self._unanswered = self._unanswered, []
        _answer_all(unanswered, quietly=True)

    def _drain(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < SETTLE_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            runs = [item for item in batch if item is not None]
            if runs:
                self.thread_batches += 1
                answers = self.record([returned for returned, _ in runs])
                with self._lock:
                    held = self._stopping or _shutting_down()  # the loop may not turn again:
                    if held:
                        self._unanswered += answers  # stop() answers them, in the main thread
                if not held:
                    runs[0][1].post(_answer_all, answers)
            if len(runs) < len(batch):
                return

    def settle(self, batch: list[_Returned]) -> None:
        """Record ``batch`` (one transaction, one lease round trip), then answer Celery."""
        _answer_all(self.record(batch))

    def record(self, batch: list[_Returned]) -> list[tuple[_Returned, Any]]:
        """Record ``batch``: each run with the summary Celery is answered with."""
        summaries: list[Any]
        try:
            runtime = self.runtime_of()
            runs = [(runtime.spec(r.deferred.message.job), r.deferred.message, r.deferred.outcome)
                    for r in batch]  # fmt: skip
            summaries = [self.summary(outcome) for outcome in runtime.guard.settle(runs)]
        except Exception as exc:  # the ledger stayed unreachable: the rows stay active
            log.exception("settling %d run(s) failed; their leases expire within their TTL",
                          len(batch))  # fmt: skip
            summaries = [not_recorded(exc)] * len(batch)
        self.batches += 1
        self.settled += len(batch)
        return list(zip(batch, summaries, strict=True))


def _answer_all(answers: list[tuple[_Returned, Any]], quietly: bool = False) -> None:
    """Celery's ``on_success`` for each settled run: the acknowledgement."""
    for returned, summary in answers:
        acknowledge(returned.answer, returned.request,
                    (0, saferepr(summary), returned.runtime), quietly)  # fmt: skip


def acknowledge(answer: Answer, request: Request, retval: Any, quietly: bool) -> None:
    """Celery's ``on_success`` (``answer``) for a run the main process recorded; ``quietly``: a
    failure (the worker is stopping) is a warning, the message comes back and is found done."""
    try:
        answer(request, retval)
    except Exception:
        if not quietly:
            raise
        log.warning("acknowledging %s failed; it is redelivered after the visibility timeout "
                    "and found recorded", request.id)  # fmt: skip


def not_recorded(exc: BaseException) -> dict[str, Any]:
    """The summary Celery is answered with for a run whose record the ledger refused."""
    return {"state": None, "detail": f"not recorded: {type(exc).__name__}"}


def _shutting_down() -> bool:
    """Whether Celery is stopping this worker (warm or cold)."""
    from celery.worker import state

    return any(flag is not None and flag is not False  # an exit code: 0 is a warm stop
               for flag in (state.should_stop, state.should_terminate))


def _hub() -> Any:
    """The consumer's event loop (kombu's hub) when this thread runs one, else None."""
    from kombu.asynchronous import get_event_loop

    return get_event_loop()


SETTLER: Settler | None = None  # set by workers.tasks


class SettlingRequest(Request):  # type: ignore[misc]
    """The run task's ``Request``: a :class:`Deferred` result goes to the :data:`SETTLER`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        answer = cls.__dict__.get("on_success")  # what Celery's create_request_cls defined
        if answer is not None:
            cls.on_success = _settling(answer)  # type: ignore[method-assign]
        execute = cls.__dict__.get("execute_using_pool")
        if execute is not None:
            cls.execute_using_pool = _claiming(execute, answer)

    def on_success(self, failed__retval__runtime: Any, **kwargs: Any) -> Any:
        """Celery's ``on_success``, or settle a deferred run first."""
        return _settling(Request.on_success)(self, failed__retval__runtime, **kwargs)

    def cancel(self, pool: Any, signal: Any = None, emit_retry: bool = True) -> None:
        """Celery's cancel (a cold shutdown, a lost broker connection); a run the main process
        guards (:mod:`workers.claims`) is cancelled there, its child's attempt terminated."""
        from workers import claims

        super().cancel(pool, signal, emit_retry=emit_retry)
        if claims.CLAIMS is not None:
            claims.CLAIMS.cancel(self.id)


def _claiming(execute: Answer, answer: Answer | None) -> Answer:
    """``execute_using_pool``, or (``AGENTCRON_SYNC_CLAIM=main``) the main process's guard."""
    def execute_using_pool(self: Request, pool: Any, **kwargs: Any) -> Any:
        from workers import claims

        if claims.CLAIMS is None or answer is None or not claims.CLAIMS.serves(pool):
            return execute(self, pool, **kwargs)
        if self.revoked():
            from celery.exceptions import TaskRevokedError

            raise TaskRevokedError(self.id)
        claims.CLAIMS.submit(self, pool, answer)
        return None

    return execute_using_pool


def _settling(answer: Answer) -> Answer:
    def on_success(self: Request, failed__retval__runtime: Any, **kwargs: Any) -> Any:
        failed, retval, runtime = failed__retval__runtime
        if not failed and isinstance(retval, Deferred) and SETTLER is not None:
            SETTLER.add(_Returned(self, retval, runtime, answer))
            return None
        return answer(self, failed__retval__runtime, **kwargs)

    return on_success


def install_in_child(task: Any) -> None:
    """Let ``task``'s :class:`Deferred` results cross the result pipe as themselves (Celery's
    prefork tracer sends the ``repr`` of a result); call in each prefork child."""
    trace = task.__trace__
    if trace is None or getattr(trace, "agentcron_deferring", False):
        return

    def deferring(*args: Any, **kwargs: Any) -> Any:
        result, info, took, text = trace(*args, **kwargs)
        return result, info, took, (result if isinstance(result, Deferred) else text)

    deferring.agentcron_deferring = True  # type: ignore[attr-defined]
    task.__trace__ = deferring
