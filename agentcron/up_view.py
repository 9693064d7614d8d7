"""What ``agentcron up`` shows live: a line per new or changed run, and each job's next fire."""

from __future__ import annotations

from collections.abc import Sequence

from agentcron.clock import Clock
from agentcron.console.data import short_result
from agentcron.instants import format_instant
from agentcron.jobs import JobSpec
from agentcron.ledger.records import RunRecord
from agentcron.ledger.store import Ledger
from agentcron.secrets import scrub


def describe_run(record: RunRecord) -> str:
    """One line for a run: window, state, attempts, duration, and its error or what it produced
    (its summary, title or result, on one line, truncated)."""
    parts = [f"{record.window_key:<48}", f"{record.state.value:<9}", f"attempt {record.attempt}"]
    if record.duration is not None:
        parts.append(f"{record.duration:.2f}s")
    if record.error_message:
        error = " ".join((scrub(record.error_message) or "").split())
        parts.append(f"{record.error_type or 'error'}: {error[:80]}")
    elif record.result is not None:
        parts.append("-> " + short_result(record.result, 90))
    return "  ".join(parts)


def describe_next(specs: Sequence[JobSpec], clock: Clock) -> list[str]:
    """``job  next fire`` for every enabled job."""
    now = clock.now()
    lines = []
    for spec in specs:
        if not spec.job.enabled:
            continue
        fire = spec.schedule.next_fire(now)
        when = format_instant(fire) if fire is not None else "never"
        lines.append(f"  next  {spec.name:<32} {when}  ({spec.kind.value}, {spec.job.schedule})")
    return lines


class RunWatcher:
    """Remembers what it has shown; :meth:`changes` returns lines for new or changed runs."""

    def __init__(self, ledger: Ledger, limit: int = 50) -> None:
        self.ledger = ledger
        self.limit = limit
        self._seen: dict[str, tuple[str, int]] = {}
        self._down = False

    def changes(self) -> list[str]:
        """Lines for runs that are new or changed since the last call (oldest first); one line
        when the ledger stops answering (it is asked again at the next refresh)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            records = self.ledger.list_runs(limit=self.limit)
        except SQLAlchemyError as exc:
            was_down, self._down = self._down, True
            return [] if was_down else [f"  ledger unavailable ({type(exc).__name__}); retrying"]
        self._down = False
        lines = []
        for record in reversed(records):
            mark = (record.state.value, record.attempt)
            if self._seen.get(record.window_key) != mark:
                self._seen[record.window_key] = mark
                lines.append("  run   " + describe_run(record))
        return lines
