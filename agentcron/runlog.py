"""Per-run log capture: the lines an agent logs through ``ctx.log``, kept for the ledger.

``ctx.log`` is a :class:`RunLogAdapter`: every record still goes to the ``agentcron.agent.<job>``
logger as before, and a copy of its text (INFO and above, or lower when that logger is enabled
for it) is kept in a bounded buffer: the last :data:`MAX_LINES` lines or :data:`MAX_BYTES`
bytes, whichever is smaller. The guard hands the buffer to the ledger when the run ends: one
row per delivery, labelled with its last attempt (in-process retries share the context, so their
lines are in the same row, in order).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from agentcron.secrets import scrub

if TYPE_CHECKING:  # the run context and the ledger import this module
    from agentcron.clock import Clock
    from agentcron.context import RunContext
    from agentcron.ledger.store import Ledger

MAX_LINES = 1000
MAX_BYTES = 256 * 1024
MAX_LINE_CHARS = 4000


class LineBuffer:
    """The newest lines that fit in ``max_lines`` and ``max_bytes`` (older ones dropped)."""

    def __init__(self, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lines: deque[str] = deque()
        self._bytes = 0
        self.dropped = 0

    def add(self, line: str) -> None:
        """Keep ``line`` (clipped to :data:`MAX_LINE_CHARS`), dropping the oldest to fit."""
        if len(line) > MAX_LINE_CHARS:
            line = line[: MAX_LINE_CHARS - 1] + "…"
        size = len(line.encode(errors="replace"))
        self._lines.append(line)
        self._bytes += size
        while self._lines and (len(self._lines) > self.max_lines or self._bytes > self.max_bytes):
            self._bytes -= len(self._lines.popleft().encode(errors="replace"))
            self.dropped += 1

    def lines(self) -> list[str]:
        """The kept lines, oldest first (a note first when older ones were dropped)."""
        kept = list(self._lines)
        return [f"[{self.dropped} earlier line(s) dropped]", *kept] if self.dropped else kept


class RunLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: logs as a plain LoggerAdapter and keeps each line for the run's record."""

    def __init__(self, logger: logging.Logger, extra: MutableMapping[str, Any]) -> None:
        super().__init__(logger, extra)
        self.buffer = LineBuffer()

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log as usual and keep the formatted line."""
        if level >= logging.INFO or self.logger.isEnabledFor(level):
            try:
                text = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                text = f"{msg} {args}"
            self.buffer.add(f"{logging.getLevelName(level)} {scrub(text)}")
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1  # the agent's line, not this one
        super().log(level, msg, *args, **kwargs)


def captured_lines(ctx: RunContext) -> list[str]:
    """The lines ``ctx`` captured (none when the agent never touched ``ctx.log``)."""
    adapter = vars(ctx).get("log")
    return adapter.buffer.lines() if isinstance(adapter, RunLogAdapter) else []


def keep_run_log(ledger: Ledger, ctx: RunContext, clock: Clock) -> None:
    """Store what ``ctx`` captured in the ledger (nothing when it captured nothing)."""
    lines = captured_lines(ctx)
    if not lines:
        return
    from agentcron.ledger.views import LedgerViews  # a layer above the run context

    try:
        LedgerViews(ledger, clock).save_run_log(ctx.window_key, ctx.attempt, lines)
    except Exception as exc:  # a run's outcome never depends on keeping its log lines
        logging.getLogger("agentcron.runlog").warning(
            "%s: log lines not kept (%s)", ctx.window_key, type(exc).__name__)
