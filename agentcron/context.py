"""The run context: the one argument an agent function receives."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from agentcron.reports.content import REPORTS_PER_RUN, PendingReport, ReportError, make_report
from agentcron.runlog import RunLogAdapter
from agentcron.spend.usage import UsageMeter, usage_of


class RunCancelled(Exception):
    """Raised by :meth:`RunContext.raise_if_cancelled` when the run was asked to stop."""


class BudgetExceeded(RunCancelled):
    """Raised by ``ctx.usage`` when a ``hard=True`` budget is spent mid-run (the run ends
    ``cancelled``, without retries)."""


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
    # Spend and limits, made on first use (the guard's meter knows prices and budgets).
    meter_factory: Callable[[], UsageMeter] = field(default=UsageMeter, repr=False)
    limits: Any = field(default=None, repr=False)  # agentcron.limits.RunLimits, from the guard
    # Reports of the current attempt: written with the run's success, dropped when it fails.
    _reports: list[PendingReport] = field(default_factory=list, repr=False)

    @cached_property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that tags every record with the job, window and attempt (made on first use);
        its lines are also kept with the run in the ledger (:mod:`agentcron.runlog`)."""
        return RunLogAdapter(
            logging.getLogger(f"agentcron.agent.{self.job}"),
            {"job": self.job, "window_key": self.window_key, "attempt": self.attempt},
        )

    @cached_property
    def meter(self) -> UsageMeter:
        """This run's usage by model (what ``ctx.usage`` added up)."""
        return self.meter_factory()

    def report(self, title: str, body: Any, *, format: str = "markdown",
               attachments: Mapping[str, bytes] | None = None) -> None:  # fmt: skip
        """Keep a report for this window (``body``: text, or a dict/list kept as JSON).

        It is stored, and sent to the job's ``deliver`` targets, only if this attempt succeeds.
        Raises :class:`~agentcron.reports.ReportError` for a bad title, body or attachment.
        """
        if len(self._reports) >= REPORTS_PER_RUN:
            raise ReportError(f"at most {REPORTS_PER_RUN} reports per run")
        self._reports.append(make_report(title, body, format, attachments))

    @property
    def reports(self) -> tuple[PendingReport, ...]:
        """The reports this attempt has made so far."""
        return tuple(self._reports)

    def discard_reports(self) -> None:
        """Forget this attempt's reports (the attempt failed; a retry starts afresh)."""
        self._reports.clear()

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

    def usage(self, model: str, input_tokens: int = 0, output_tokens: int = 0,
              cost_usd: float | None = None) -> float:  # fmt: skip
        """Record one LLM call's tokens (cost from ``AGENTCRON_PRICES`` unless given); any
        number of times per run. Returns the call's cost in USD."""
        return self.meter.add(model, input_tokens, output_tokens, cost_usd)

    def usage_from(self, response: Any, model: str | None = None) -> float:
        """Record the usage of an OpenAI-compatible or Anthropic response (its ``usage``)."""
        return self.usage(*usage_of(response, model))

    def limit(self, name: str, tokens: int = 0, wait: float | None = None) -> Any:
        """Hold the fleet-wide limit ``name`` for one call: ``with`` or ``async with``; waits
        until it is free (or ``wait`` seconds, then raises ``LimitWaitExceeded``)."""
        if self.limits is None:
            raise ValueError(f"no limit named {name!r}: this run has no fleet-wide limits")
        return self.limits.hold(name, tokens, owner=self.window_key, wait=wait)
