"""Prefork children run; the worker's main process records their runs (opt-in, issue 18).

With ``AGENTCRON_SYNC_SETTLE=main`` a sync run's last two store calls, its fenced completion
and its lease release, leave the prefork child: the child stops at the end of the run (the
guard's ``defer_settlement``), its task returns a :class:`Deferred` (the completion request and
the lease it still holds) through the pool's result pipe, and the main process records it
(:meth:`agentcron.guard.run.Guard.settle`: completions in one ledger call, leases released in
one round trip, then statistics, observers and callbacks once per recorded outcome) and only
then acknowledges the message and sends Celery's *task-succeeded* event. The default
(``child``) keeps every write in the child: measured at prefetch multiplier 1, settling in the
main process serialises what two children did in parallel and is slower (bench/RESULTS.md);
it is the base for claiming in the main process ahead of the children (issue 18, not done).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.utils.saferepr import saferepr
from celery.worker.request import Request

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
    """Records the runs prefork children returned, on the consumer's loop."""

    def __init__(self, runtime_of: Callable[[], Any], summary: Callable[[Outcome], Any]) -> None:
        self.runtime_of = runtime_of
        self.summary = summary
        self.batches = 0
        self.settled = 0

    def add(self, returned: _Returned) -> None:
        """Settle ``returned`` now, on the consumer's loop, before it is acknowledged."""
        self.settle([returned])

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
        for returned, summary in zip(batch, summaries, strict=True):
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
