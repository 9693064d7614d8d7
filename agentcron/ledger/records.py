"""Plain records the ledger hands out: states and rows, free of any ORM session."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentcron.reports.content import PendingReport


class RunState(enum.StrEnum):
    """Where a window's run stands. The last six are terminal."""

    SCHEDULED = "scheduled"
    CLAIMED = "claimed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    MISSED = "missed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED, RunState.MISSED,
     RunState.CANCELLED, RunState.TIMEOUT}
)  # fmt: skip
ACTIVE_STATES = frozenset({RunState.CLAIMED, RunState.RUNNING})


@dataclass(frozen=True)
class NewWindow:
    """A window the scheduler (or a manual trigger) wants recorded before it is published."""

    job: str
    window_start: datetime
    window_key: str
    slot: datetime
    trigger: str = "schedule"


@dataclass(frozen=True)
class RunRecord:
    """One row of the runs table."""

    job: str
    window_start: datetime
    window_key: str
    slot: datetime
    trigger: str
    state: RunState
    attempt: int
    token: int | None
    worker_id: str | None
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None
    error_type: str | None
    error_message: str | None
    result: Any

    @property
    def next_attempt(self) -> int:
        """The attempt number of this window's next delivery."""
        return max(self.attempt, 0) + 1

    @property
    def window(self) -> NewWindow:
        """The window this row records."""
        return NewWindow(self.job, self.window_start, self.window_key, self.slot, self.trigger)


def record_from(values: Mapping[Any, Any]) -> RunRecord:
    """A record from a row's values by column name (datetimes as the caller typed them)."""
    return RunRecord(
        job=values["job"], window_start=values["window_start"], window_key=values["window_key"],
        slot=values["slot"], trigger=values["trigger"], state=RunState(values["state"]),
        attempt=values["attempt"], token=values["token"], worker_id=values["worker_id"],
        scheduled_at=values["scheduled_at"], started_at=values["started_at"],
        finished_at=values["finished_at"], duration=values["duration"],
        error_type=values["error_type"], error_message=values["error_message"],
        result=values["result"],
    )  # fmt: skip


class ClaimStatus(enum.StrEnum):
    """What a claim found (see ``Ledger.claim``)."""

    CLAIMED = "claimed"
    DONE = "done"
    ACTIVE = "active"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim, the row as it stands after it, and as it stood before."""

    status: ClaimStatus
    record: RunRecord
    previous: RunRecord | None = None


@dataclass(frozen=True)
class ClaimRequest:
    """One claim of a batch (see ``Ledger.claim``)."""

    window: NewWindow
    token: int
    worker_id: str
    max_attempts: int
    force: bool = False
    running: bool = False


@dataclass(frozen=True)
class CompleteRequest:
    """One checked completion of a batch (see ``Ledger.complete_request``)."""

    job: str
    window_start: datetime
    token: int
    state: RunState
    result: Any
    error_type: str | None
    error_message: str | None
    duration: float | None
    # A success's reports and the job's delivery targets: written in the completion's
    # transaction, only if the completion wins (see agentcron.reports.records).
    reports: tuple[PendingReport, ...] = ()
    deliver: tuple[str, ...] = ()
