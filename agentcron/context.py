"""The run context: the one argument an agent function receives."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from agentcron.runlog import RunLogAdapter


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
    cancel_reason: str | None = None
    # A plain flag, not a threading.Event: setting and reading one attribute is atomic, and ten
    # thousand runs in flight should not carry ten thousand Conditions and Locks.
    _cancelled: bool = field(default=False, repr=False)

    @cached_property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that tags every record with the job, window and attempt (made on first use);
        its lines are also kept with the run in the ledger (:mod:`agentcron.runlog`)."""
        return RunLogAdapter(
            logging.getLogger(f"agentcron.agent.{self.job}"),
            {"job": self.job, "window_key": self.window_key, "attempt": self.attempt},
        )

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked this run to stop; check it between steps."""
        return self._cancelled

    def request_cancel(self, reason: str = "cancelled") -> None:
        """Ask the run to stop at its next check (cooperative cancellation)."""
        if not self._cancelled:
            self.cancel_reason = reason
            self._cancelled = True

    def raise_if_cancelled(self) -> None:
        """Raise :class:`RunCancelled` if cancellation was requested."""
        if self._cancelled:
            raise RunCancelled(self.cancel_reason or "cancelled")
