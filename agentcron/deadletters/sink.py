"""Where a poison entry goes: the store, one log line, a metric and an alert.

:func:`dead_letter` is the one entry point (the worker's transport and consumer call it, and so
can anything else that refuses a queue entry, e.g. a signature check). It never raises.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.deadletters.classify import kind_of, preview
from agentcron.settings import Settings

if TYPE_CHECKING:
    from agentcron.alerts import Alerter
    from agentcron.deadletters.store import DeadLetterStore

log = logging.getLogger("agentcron.deadletters")
ALERT_STATE = "dead_letter"


class DeadLetterSink:
    """Stores, logs, counts and alerts each dead letter (see the module docstring).

    An entry the store refuses (database down) is kept in memory (the newest ``pending_max``)
    and stored by a retry every ``retry_interval`` seconds, or with the next dead letter.
    Alerts: at most one per queue and kind every ``alert_interval`` seconds (a flood of garbage
    is one alert that counts the entries since the last one, not one webhook per entry).
    """

    def __init__(self, store: DeadLetterStore | None, *, max_bytes: int = 256 * 1024,
                 alerter: Alerter | None = None, counter: Any = None,
                 retry_interval: float = 5.0, pending_max: int = 1000,
                 alert_interval: float = 60.0, clock: Clock = SYSTEM_CLOCK) -> None:  # fmt: skip
        self.store = store
        self.max_bytes = max_bytes
        self.alerter = alerter
        self.counter = counter
        self.retry_interval = retry_interval
        self.pending: deque[tuple[str, str, bytes | str]] = deque(maxlen=pending_max)
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._alerts = ThreadPoolExecutor(1, "agentcron-dead-letters") if alerter else None
        self.alert_interval = alert_interval
        self.clock = clock
        self._alerted: dict[tuple[str, str], tuple[float, int]] = {}  # last alert, unalerted

    def __call__(self, reason: str, queue: str, raw: bytes | str) -> int | None:
        """Dead-letter one entry; its id in the store, or None if it could not be stored yet."""
        kind = kind_of(reason)
        letter_id: int | None = None
        stored = ""
        try:
            if self.store is not None:
                letter_id, new = self.store.add_entry(reason, queue, raw)
                if not new:  # one message, delivered again: one letter, one count, one alert
                    log.warning("dead letter #%d from %s delivered again (its worker was cut off "
                                "before acknowledging it); stored once", letter_id, queue)  # fmt: skip
                    return letter_id
        except Exception as exc:
            self._keep(reason, queue, raw)
            stored = (f" (not stored yet, kept in memory and retried: {type(exc).__name__}: "
                      f"{(str(exc).strip().splitlines() or [''])[0][:200]})")  # fmt: skip
        where = f"#{letter_id}" if letter_id is not None else "(unstored)"
        log.error("dead letter %s from %s: %s; entry %s%s", where, queue, reason[:300],
                  preview(raw), stored)  # fmt: skip
        if self.counter is not None:
            self.counter.labels(queue, kind).inc()
        if self._alerts is not None:
            self._maybe_alert(queue, kind, where, reason)
        if letter_id is not None and self.pending:
            self.flush_pending()
        return letter_id

    def _keep(self, reason: str, queue: str, raw: bytes | str) -> None:
        with self._pending_lock:
            self.pending.append((reason, queue, raw))
        self._retry_later()

    def _retry_later(self) -> None:
        with self._pending_lock:
            if self._timer is not None or self.retry_interval <= 0:
                return
            self._timer = threading.Timer(self.retry_interval, self._retry)
            self._timer.daemon = True
            self._timer.start()

    def _retry(self) -> None:
        with self._pending_lock:
            self._timer = None
        self.flush_pending()

    def flush_pending(self) -> int:
        """Store the entries kept in memory, oldest first; how many were stored (the rest are
        retried later). One flush at a time."""
        if self.store is None or not self._flush_lock.acquire(blocking=False):
            return 0
        stored = 0
        try:
            while self.pending:
                reason, queue, raw = self.pending[0]
                try:
                    letter_id = self.store.add(reason, queue, raw)
                except Exception:
                    self._retry_later()
                    break
                with self._pending_lock:
                    self.pending.popleft()
                stored += 1
                log.warning("dead letter from %s stored late as #%d", queue, letter_id)
        finally:
            self._flush_lock.release()
        return stored

    def _maybe_alert(self, queue: str, kind: str, where: str, reason: str) -> None:
        now = self.clock.monotonic()
        with self._pending_lock:
            last, unalerted = self._alerted.get((queue, kind), (float("-inf"), 0))
            if now - last < self.alert_interval:
                self._alerted[(queue, kind)] = (last, unalerted + 1)
                return
            self._alerted[(queue, kind)] = (now, 0)
        if unalerted:
            reason = f"{reason} (and {unalerted} more {kind} since the last alert)"
        assert self._alerts is not None
        self._alerts.submit(self._alert, queue, where, reason)

    def _alert(self, queue: str, where: str, reason: str) -> None:
        from agentcron.alerts import Alert

        assert self.alerter is not None
        alert = Alert(job=f"queue {queue}", window=f"dead letter {where}", state=ALERT_STATE,
                      reason=reason[:400])  # fmt: skip
        try:
            self.alerter.alert(alert, log_line=False)
        except Exception:
            log.exception("dead letter alert failed")


_DEFAULT: list[DeadLetterSink] = []
_LIMIT: list[int] = []
_LOCK = threading.Lock()


def dead_letters_counter() -> Any:
    """``agentcron_dead_letters_total{queue, kind}`` of this process's metrics."""
    from agentcron.series import get_metrics

    return get_metrics().dead_letters


def sink_from_settings(settings: Settings) -> DeadLetterSink:
    """A sink on ``settings``' ledger, with its alert notifiers and the process's metric."""
    from agentcron.alerts import safe_alerter
    from agentcron.deadletters.store import DeadLetterStore
    from agentcron.ledger.store import Ledger

    ledger = Ledger.from_settings(settings)  # SQLite ledgers migrate themselves
    store = DeadLetterStore(ledger.engine, keep=settings.dead_letters_keep,
                            raw_max_bytes=settings.message_max_bytes)  # fmt: skip
    return DeadLetterSink(store, max_bytes=settings.message_max_bytes,
                          alerter=safe_alerter(settings), counter=dead_letters_counter())  # fmt: skip


def default_sink() -> DeadLetterSink:
    """This process's sink (built from the environment on first use)."""
    with _LOCK:
        if not _DEFAULT:
            try:
                _DEFAULT.append(sink_from_settings(Settings.from_env()))
            except Exception as exc:  # bad settings or no database: log only, try again later
                log.error("dead-letter store unavailable (%s): this one is only logged", exc)
                return DeadLetterSink(None, max_bytes=_limit(), counter=dead_letters_counter())
        return _DEFAULT[0]


def max_message_bytes() -> int:
    """The largest queue entry a worker accepts (``AGENTCRON_MESSAGE_MAX_BYTES``); read once,
    without building the sink (which needs the ledger) until a poison entry turns up."""
    with _LOCK:
        return _DEFAULT[0].max_bytes if _DEFAULT else _limit()


def _limit() -> int:
    if not _LIMIT:
        try:
            _LIMIT.append(Settings.from_env().message_max_bytes)
        except Exception:  # bad settings: the sink logs them when it is built
            _LIMIT.append(Settings.message_max_bytes)
    return _LIMIT[0]


def _forget_in_child() -> None:
    """After a fork: drop the parent's sink without closing its database connections."""
    if _DEFAULT and _DEFAULT[0].store is not None:
        _DEFAULT[0].store.engine.dispose(close=False)
    _DEFAULT.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def set_default_sink(sink: DeadLetterSink | None) -> None:
    """Replace (or with None, forget) this process's sink."""
    with _LOCK:
        _DEFAULT.clear()
        if sink is not None:
            _DEFAULT.append(sink)


def dead_letter(reason: str, queue: str, raw: bytes | str) -> int | None:
    """Move one queue entry to the dead-letter store; never raises.

    ``reason`` is ``"kind: detail"`` with kind one of
    :data:`agentcron.deadletters.classify.KINDS` (``undecodable``, ``too_large``,
    ``content_type``, ``unknown_task``, ``unsigned``, ``forged``); ``queue`` the queue the entry
    was taken from (where ``--requeue`` puts it back); ``raw`` the entry exactly as it was on the
    queue. The entry is stored (cut at ``AGENTCRON_MESSAGE_MAX_BYTES``), logged once with a short
    preview, counted in ``agentcron_dead_letters_total{queue,kind}`` and alerted. The caller
    must still acknowledge or remove the entry from its queue. Returns the stored id, or None.
    """
    return default_sink()(reason, queue, raw)
