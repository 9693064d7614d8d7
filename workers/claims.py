"""``AGENTCRON_SYNC_CLAIM=main``: a prefork worker's main process guards its sync runs.

The run task's ``Request`` (:class:`workers.settle.SettlingRequest`) does not send a sync run to
the pool as Celery would: :meth:`Claims.submit` admits the delivery and runs the window through
the guard on one event loop thread of the main process (:meth:`agentcron.guard.Guard.run_in`
with :class:`workers.children.ChildMode`), so the claims, lease acquires, completions and
releases of all the runs in flight go out in batches, as in the asyncio worker, and only the
agent calls go to the children. When the run has ended (recorded, or a duplicate, or refused) the
consumer's loop acknowledges the message and sends Celery's *task-succeeded* event with the
run's summary, as for any task (posted to that loop through :class:`workers.mailbox.HubMailbox`,
so that the acknowledgement is not left waiting for the loop's next poll).

The worker reserves ``-c`` x ``AGENTCRON_SYNC_PREFETCH`` messages (1 unless set, as on the
default path). Above 1, a reserved message is claimed at once and its run waits for a free child
under a renewed lease: short runs go faster, and a reserved message dies with its worker (it
comes back after the visibility timeout; bench/RESULTS.md). What the guard promises holds as
in the asyncio worker: a main process killed with runs in flight leaves their messages
unacknowledged (redelivered after the visibility timeout) and their leases to expire within
their TTL, and the redelivery takes the window over or finds it done. At a warm shutdown the
runs still in flight are given ``agentcron_shutdown_timeout`` seconds, then cancelled (their
leases released, their messages not acknowledged: restored to the queue).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.utils.saferepr import saferepr

from agentcron.admission import admit, confirm_async
from workers.children import ChildMode, open_cancel_page, remove_cancel_page
from workers.loop import LoopThread
from workers.mailbox import HubMailbox, mailbox_for
from workers.settle import acknowledge, not_recorded

log = logging.getLogger("agentcron.claims")
LATE_WAIT = 10.0
"""At shutdown, how long the main thread waits for a returned run to be recorded."""
Answer = Callable[..., Any]


class Claims:
    """The main process's guard of sync runs (one event loop thread, one child mode)."""

    def __init__(self, runtime_of: Callable[[], Any], summary: Callable[[Any], Any],
                 requeue: Callable[..., None]) -> None:  # fmt: skip
        self.runtime_of = runtime_of
        self.summary = summary
        self.requeue = requeue
        self.stopping = False
        self._thread: LoopThread | None = None
        self._mode: ChildMode | None = None
        self._pool: Any = None
        self._mailbox: HubMailbox | None = None  # to the consumer's loop (answers, attempts)
        self._by_request: dict[str, concurrent.futures.Future[Any]] = {}  # the runs in flight
        self._late: list[tuple[Answer, Any, Any]] = []  # ended after the consumer's loop stopped
        self._late_ready = threading.Condition()

    def serves(self, pool: Any) -> bool:
        """Whether a request for ``pool`` is run here: a prefork pool on the consumer's event
        loop, while the worker is not stopping."""
        from kombu.asynchronous import get_event_loop

        # without the consumer's event loop (the embedded SQL broker polls): as without claims
        return not self.stopping and _is_prefork(pool) and get_event_loop() is not None

    def submit(self, request: Any, pool: Any, answer: Answer) -> None:
        """Run ``request``'s window (attempts in ``pool``'s children); answer Celery
        (``answer``, its ``on_success``) on the consumer's loop."""
        from kombu.asynchronous import get_event_loop

        hub = get_event_loop()
        if (self._thread is None or self._pool is not pool or self._mailbox is None
                or self._mailbox.hub is not hub):
            self._start(pool, hub)
        assert self._thread is not None
        kwargs = dict(request.kwargs)
        began = time.monotonic()
        # active in Celery's eyes (inspect, Flower; cancelled at a cold shutdown or a lost
        # connection: :meth:`cancel`), run by this process
        request.on_accepted(os.getpid(), began)
        future = self._by_request[request.id] = self._thread.submit(self._run(kwargs))

        def ended(done: concurrent.futures.Future[Any]) -> None:  # on the loop thread
            self._by_request.pop(request.id, None)
            if done.cancelled():  # a shutdown: not acknowledged, restored to the queue
                return
            error = done.exception()
            if error is not None:
                log.error("run %s ended without a record (%s: %s); its lease expires within "
                          "its TTL", request.id, type(error).__name__, error)  # fmt: skip
                summary = not_recorded(error)
            else:
                summary = done.result()
            retval = (0, saferepr(summary), time.monotonic() - began)
            if self.stopping:  # the loop may not turn again: answered from the main thread
                with self._late_ready:
                    self._late.append((answer, request, retval))
                    self._late_ready.notify_all()
            elif self._mailbox is not None:
                self._mailbox.post(self._answer, answer, request, retval)

        future.add_done_callback(ended)
        _give_back_slot(pool)

    def cancel(self, request_id: str) -> None:
        """Celery cancels the request (a cold shutdown, a lost broker connection): its run ends
        unrecorded, the attempt in a child terminated, the message not acknowledged."""
        future = self._by_request.get(request_id)
        if future is not None:
            log.info("run of %s cancelled by Celery (%s)", request_id,
                     "its attempt is stopped" if future.cancel() else "it had ended")  # fmt: skip

    @staticmethod
    def _answer(answer: Answer, request: Any, retval: Any) -> None:
        acknowledge(answer, request, retval, quietly=True)

    def _start(self, pool: Any, hub: Any) -> None:
        if self._thread is None:
            open_cancel_page(os.getpid(), create=True)  # before the first attempt is sent
            self._thread = LoopThread("agentcron-claims")
            self._thread.start()
        self._pool = pool
        self._mailbox = mailbox_for(hub)
        self._mode = ChildMode(pool, self._mailbox.post, lambda: self.stopping, self._after_result)

    def _after_result(self) -> None:
        """In the main thread, after a child returned: once Celery is stopping the worker (it
        waits for the pool's jobs, its loop may not turn again), wait for that run to be
        recorded and acknowledge it here, before the consumer gives its messages back."""
        if not self.stopping:
            return
        deadline = time.monotonic() + LATE_WAIT
        with self._late_ready:
            while not self._late and time.monotonic() < deadline:
                self._late_ready.wait(deadline - time.monotonic())
        self._answer_late()

    def _answer_late(self) -> None:
        with self._late_ready:
            late, self._late = self._late, []
        for answer, request, retval in late:
            self._answer(answer, request, retval)

    async def _run(self, kwargs: dict[str, Any]) -> Any:
        admitted = admit(kwargs, self.runtime_of, ask_ledger=False)
        if admitted is not None:
            admitted = await confirm_async(admitted)
        if admitted is None:
            return None
        runtime, spec, message = admitted.parts()
        assert self._mode is not None
        outcome = await runtime.guard.run_in(spec, message, self._mode)
        if outcome.requeue_after is not None:
            await asyncio.to_thread(self.requeue, spec, message, outcome)
        return self.summary(outcome)

    def stop(self, timeout: float) -> None:
        """At shutdown: wait up to ``timeout`` seconds for the runs in flight, then cancel the
        rest (leases released, messages not acknowledged)."""
        self.stopping = True
        running = list(self._by_request.values())
        if running:
            log.info("waiting up to %gs for %d sync run(s) in flight", timeout, len(running))
            concurrent.futures.wait(running, timeout)
        for future in list(self._by_request.values()):
            future.cancel()
        if self._thread is not None:
            self._thread.stop()
            remove_cancel_page()
        self._answer_late()


def _give_back_slot(pool: Any) -> None:
    """Celery took one of the pool's ``-c`` slots for this request (the semaphore a prefork
    worker acquires before ``execute_using_pool``, given back when a pool job returns); the
    request holds none while the main process guards it, so the next reserved message is
    claimed at once. The children's jobs give slots back as they return: the semaphore is
    bounded by ``-c`` (kombu's ``LaxBoundedSemaphore``)."""
    slots = getattr(getattr(pool, "_pool", None), "_putlock", None)
    if slots is not None:
        slots.release()


def _is_prefork(pool: Any) -> bool:
    from celery.concurrency.prefork import TaskPool

    return isinstance(pool, TaskPool)


CLAIMS: Claims | None = None  # set by workers.tasks when AGENTCRON_SYNC_CLAIM=main
