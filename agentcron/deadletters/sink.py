"""Where a poison entry goes: the store, one log line, a metric and an alert.

:func:`dead_letter` is the one entry point (the worker's transport and consumer call it, and so
can anything else that refuses a queue entry, e.g. a signature check). It never raises.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from agentcron.deadletters.classify import kind_of, preview
from agentcron.settings import Settings

if TYPE_CHECKING:
    from agentcron.alerts import Alerter
    from agentcron.deadletters.store import DeadLetterStore

log = logging.getLogger("agentcron.deadletters")
ALERT_STATE = "dead_letter"


class DeadLetterSink:
    """Stores, logs, counts and alerts each dead letter (see the module docstring)."""

    def __init__(self, store: DeadLetterStore | None, *, max_bytes: int = 256 * 1024,
                 alerter: Alerter | None = None, counter: Any = None) -> None:  # fmt: skip
        self.store = store
        self.max_bytes = max_bytes
        self.alerter = alerter
        self.counter = counter
        self._alerts = ThreadPoolExecutor(1, "agentcron-dead-letters") if alerter else None

    def __call__(self, reason: str, queue: str, raw: bytes | str) -> int | None:
        """Dead-letter one entry; its id in the store, or None if it could not be stored."""
        kind = kind_of(reason)
        letter_id: int | None = None
        stored = ""
        try:
            if self.store is not None:
                letter_id = self.store.add(reason, queue, raw)
        except Exception as exc:
            stored = f" (NOT STORED: {type(exc).__name__}: {str(exc)[:200]})"
        where = f"#{letter_id}" if letter_id is not None else "(unstored)"
        log.error("dead letter %s from %s: %s; entry %s%s", where, queue, reason[:300],
                  preview(raw), stored)  # fmt: skip
        if self.counter is not None:
            self.counter.labels(queue, kind).inc()
        if self._alerts is not None:
            self._alerts.submit(self._alert, queue, where, reason)
        return letter_id

    def _alert(self, queue: str, where: str, reason: str) -> None:
        from agentcron.alerts import Alert

        assert self.alerter is not None
        alert = Alert(job=f"queue {queue}", window=f"dead letter {where}", state=ALERT_STATE,
                      reason=reason[:300])  # fmt: skip
        try:
            self.alerter.alert(alert, log_line=False)
        except Exception:
            log.exception("dead letter alert failed")


_DEFAULT: list[DeadLetterSink] = []
_LIMIT: list[int] = []
_LOCK = threading.Lock()


def dead_letters_counter() -> Any:
    """``agentcron_dead_letters_total{queue, kind}`` of this process's metrics."""
    from agentcron.metrics import get_metrics

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
            except Exception as exc:  # bad settings or no database: log-only, never crash
                log.error("dead-letter store unavailable (%s): dead letters are only logged", exc)
                _DEFAULT.append(DeadLetterSink(None, max_bytes=_limit(),
                                               counter=dead_letters_counter()))
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
