"""The task message: the contract between beat (or a manual trigger) and the workers.

Every run message carries the job, the window key, the window start, the slot, the trigger and
the attempt. The window is computed once, where the slot is produced, and never on a worker.
Only these plain fields travel: never the job's config, never secrets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from agentcron.instants import format_instant, parse_instant
from agentcron.windows import parse_window_key

SYNC_TASK = "agentcron.run_sync"
ASYNC_TASK = "agentcron.run_async"
TRIGGERS = ("schedule", "manual", "catchup", "backfill", "watchdog")


class WindowRow(Protocol):
    """What a message is built from: a window to record (``NewWindow``) or a ledger row
    (``RunRecord``)."""

    @property
    def job(self) -> str: ...
    @property
    def window_key(self) -> str: ...
    @property
    def window_start(self) -> datetime: ...
    @property
    def slot(self) -> datetime: ...
    @property
    def trigger(self) -> str: ...


@dataclass(frozen=True)
class RunMessage:
    """One window to run."""

    job: str
    window_key: str
    window_start: datetime
    slot: datetime
    trigger: str = "schedule"
    attempt: int = 1
    force: bool = False

    @classmethod
    def from_record(cls, row: WindowRow, attempt: int = 1, *, trigger: str | None = None,
                    force: bool = False) -> RunMessage:  # fmt: skip
        """The message of ``row``'s window (its trigger unless ``trigger`` is given)."""
        return cls(row.job, row.window_key, row.window_start, row.slot,
                   row.trigger if trigger is None else trigger, attempt, force)  # fmt: skip

    def to_kwargs(self) -> dict[str, Any]:
        """JSON-safe keyword arguments for the Celery task."""
        data = asdict(self)
        data["window_start"] = format_instant(self.window_start)
        data["slot"] = format_instant(self.slot)
        return data

    @classmethod
    def from_kwargs(cls, data: dict[str, Any]) -> RunMessage:
        """Parse and check a message; raise ValueError on anything malformed."""
        try:
            message = cls(
                job=str(data["job"]),
                window_key=str(data["window_key"]),
                window_start=parse_instant(str(data["window_start"])),
                slot=parse_instant(str(data["slot"])),
                trigger=str(data.get("trigger", "schedule")),
                attempt=int(data.get("attempt", 1)),
                force=bool(data.get("force", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed run message: {exc}") from exc
        job, start = parse_window_key(message.window_key)
        if job != message.job or start != message.window_start:
            raise ValueError(f"window key {message.window_key!r} disagrees with job/window_start")
        if message.trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {message.trigger!r}")
        if message.attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {message.attempt}")
        return message

    def short(self) -> str:
        """What Flower and logs show for this run (never the config)."""
        return f"{self.window_key} ({self.trigger}, attempt {self.attempt})"
