"""Prefork children run; the worker's main process records their runs, in batches.

A sync run's last two store calls, its fenced completion and its lease release, used to go from
the prefork child, one run at a time. Here the child stops at the end of the run (the guard's
``defer_settlement``): its task returns a :class:`Deferred` (the completion request and the
lease it still holds) through the pool's result pipe, and the main process writes the
completions of every run that came back meanwhile in ONE ledger transaction and releases their
leases in one round trip (:meth:`agentcron.guard.run.Guard.settle`), in one settling thread;
then, back on the consumer's event loop, it acknowledges each message and sends Celery's
*task-succeeded* event with the run's summary.

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
from celery.worker import state as worker_state
from celery.worker.request import Request
from kombu.asynchronous import get_event_loop

from agentcron.guard import Outcome
from agentcron.messages import RunMessage

log = logging.getLogger("agentcron.settle")
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
    """The main process's settling thread: batches of returned runs, settled by the guard."""

    def __init__(self, runtime_of: Callable[[], Any], summary: Callable[[Outcome], Any]) -> None:
        self.runtime_of = runtime_of
        self.summary = summary
        self.batches = 0
        self.settled = 0
        self._queue: queue.SimpleQueue[_Returned] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def add(self, returned: _Returned) -> None:
        """Settle ``returned`` in the next batch (starts the thread on first use)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="agentcron-settle",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        self._queue.put(returned)

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.settle(batch)

    def settle(self, batch: list[_Returned]) -> None:
        """Record ``batch`` (one transaction, one lease round trip), then answer Celery."""
        summaries: list[Any]
        try:
            runtime = self.runtime_of()
            runs = [(runtime.spec(r.deferred.message.job), r.deferred.message, r.deferred.outcome)
                    for r in batch]  # fmt: skip
            summaries = [self.summary(outcome) for outcome in runtime.guard.settle(runs)]
        except Exception as exc:  # the ledger stayed unreachable: the rows stay active
            log.exception("settling %d run(s) failed; their leases expire within their TTL",
                          len(batch))  # fmt: skip
            summaries = [{"state": None, "detail": f"not recorded: {type(exc).__name__}"}] * len(
                batch)
        self.batches += 1
        self.settled += len(batch)
        hub = None if stopping() else get_event_loop()
        for returned, summary in zip(batch, summaries, strict=True):
            if hub is None:  # no loop, or one about to stop: answer from here
                _answer(returned, summary)
            else:  # acknowledgements go out on the consumer's loop (thread-safe call_soon)
                hub.call_soon(_answer, returned, summary)  # type: ignore[no-untyped-call]


def stopping() -> bool:
    """Whether the worker is shutting down: its consumer loop may not run a callback again
    (a warm shutdown waits for the runs in its pool, outside the loop)."""
    return worker_state.should_stop is not None or worker_state.should_terminate is not None


def _answer(returned: _Returned, summary: Any) -> None:
    returned.answer(returned.request, (0, saferepr(summary), returned.runtime))


SETTLER: Settler | None = None  # set by workers.tasks


class SettlingRequest(Request):  # type: ignore[misc]
    """The run task's ``Request``: a :class:`Deferred` result goes to the :data:`SETTLER`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        answer = cls.__dict__.get("on_success")  # what Celery's create_request_cls defined
        if answer is not None:
            cls.on_success = _settling(answer)  # type: ignore[method-assign]

    def on_success(self, failed__retval__runtime: Any, **kwargs: Any) -> Any:
        """Celery's ``on_success``, or settle a deferred run first."""
        return _settling(Request.on_success)(self, failed__retval__runtime, **kwargs)


def _settling(answer: Answer) -> Answer:
    def on_success(self: Request, failed__retval__runtime: Any, **kwargs: Any) -> Any:
        failed, retval, runtime = failed__retval__runtime
        if not failed and isinstance(retval, Deferred) and SETTLER is not None:
            returned = _Returned(self, retval, runtime, answer)
            if stopping():  # settled and acknowledged before the connection closes
                SETTLER.settle([returned])
            else:
                SETTLER.add(returned)
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
