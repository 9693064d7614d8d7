"""The Fleet page's dead letters (counts, the newest, requeue, purge) and fleet-wide limits.

Dead letters come from :class:`~agentcron.deadletters.DeadLetterStore` and go back through
:func:`~agentcron.deadletters.requeue.requeue`, as with ``agentcron dead-letters``; limits from
:func:`~agentcron.limits.status.limit_status`, as with ``agentcron limits``. Only the store's
short preview of an entry is ever shown.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from agentcron.deadletters import DeadLetter, DeadLetterStore
from agentcron.limits.base import LimitStore
from agentcron.runtime import Runtime
from agentcron.secrets import scrub

log = logging.getLogger("agentcron.console")
NEWEST = 20


@dataclass
class Letters:
    """Dead letters by queue and kind, the newest few, and the limits; ``None`` where a store
    did not answer (with the reason in ``problems``)."""

    counts: list[tuple[str, str, int]] | None
    newest: list[dict[str, Any]] | None
    limits: list[dict[str, Any]] | None
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for _, _, n in self.counts or [])


class LettersView:
    """Dead-letter and limit reads and the dead-letter actions over one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.store = DeadLetterStore(runtime.ledger.engine, keep=settings.dead_letters_keep,
                                     raw_max_bytes=settings.message_max_bytes,
                                     clock=runtime.clock)  # fmt: skip
        self._limit_store: LimitStore | None = None
        self._lock = threading.Lock()

    def _limits_store(self) -> LimitStore:
        with self._lock:
            if self._limit_store is None:
                from agentcron.limits.run import open_limit_gate

                self._limit_store = open_limit_gate(self.runtime.settings,
                                                    self.runtime.ledger.engine,
                                                    self.runtime.clock).store  # fmt: skip
            return self._limit_store

    def read(self) -> Letters:
        """Everything the Fleet page shows of dead letters and limits (blocking)."""
        from agentcron.limits.status import declared_limits, limit_status

        problems: list[str] = []
        counts = newest = limits = None
        try:
            counts = self.store.counts()
            newest = [_shown(letter) for letter in self.store.list(NEWEST)]
        except Exception as exc:  # the table is missing or the ledger is down
            problems.append(f"dead letters unavailable ({type(exc).__name__}); has "
                            "`agentcron db upgrade` run?")  # fmt: skip
        try:
            declared = declared_limits(self.runtime.specs(), self.runtime.settings.limits)
            limits = limit_status(self._limits_store(), declared.values()) if declared else []
        except Exception as exc:  # Redis or the ledger does not answer, or a bad declaration
            log.warning("console: limits unavailable (%s)", type(exc).__name__)
            problems.append(f"limits unavailable ({type(exc).__name__})")
        return Letters(counts, newest, limits, problems)

    def requeue(self, letter_id: int) -> str:
        """Put one dead letter back on its queue (RequeueError if unknown or truncated)."""
        from agentcron.deadletters.requeue import requeue

        letter = requeue(self.store, self.runtime.settings.broker_url, letter_id)
        return f"requeued dead letter #{letter.id} onto {letter.queue}"

    def purge(self) -> str:
        """Delete every dead letter."""
        return f"purged {self.store.purge()} dead letter(s)"


def _shown(letter: DeadLetter) -> dict[str, Any]:
    """A letter's summary (the store's short preview, never the entry) with its reason and
    preview scrubbed of known secret values, and its time to the second."""
    summary = letter.summary()
    return summary | {"reason": scrub(summary["reason"]), "entry": scrub(summary["entry"]),
                      "created_at": f"{letter.created_at:%Y-%m-%d %H:%M:%SZ}"}  # fmt: skip
