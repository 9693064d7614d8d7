"""The run context: the one argument an agent function receives."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class RunCancelled(Exception):
    """Raised by :meth:`RunContext.raise_if_cancelled` when the run was asked to stop."""


@dataclass
class RunContext:
    """What an agent knows about the run it is doing.

    ``slot`` is the nominal fire time (aware UTC) and ``window_key`` the window this run
    belongs to; both come from the scheduler, never from this process's clock.
    """

    job: str
    task: str
    config: Mapping[str, Any]
    window_key: str
    window_start: datetime
    slot: datetime
    attempt: int = 1
    trigger: str = "schedule"
    log: logging.LoggerAdapter[logging.Logger] = field(init=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    cancel_reason: str | None = None

    def __post_init__(self) -> None:
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"agentcron.agent.{self.job}"),
            {"job": self.job, "window_key": self.window_key, "attempt": self.attempt},
        )

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked this run to stop; check it between steps."""
        return self._cancel.is_set()

    def request_cancel(self, reason: str = "cancelled") -> None:
        """Ask the run to stop at its next check (cooperative cancellation)."""
        if not self._cancel.is_set():
            self.cancel_reason = reason
            self._cancel.set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`RunCancelled` if cancellation was requested."""
        if self._cancel.is_set():
            raise RunCancelled(self.cancel_reason or "cancelled")
