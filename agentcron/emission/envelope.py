"""One window's envelope: what is recorded (a :class:`NewWindow`) and where its message goes.

:func:`emission_for` turns a job and a slot into an :class:`Emission` (the window of the slot,
its key, its jitter-delayed due time, the task and the queue); :func:`task_for` names the task
that runs a job. The beat's planner, the watchdog and backfill all build windows this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentcron.agents import AgentKind
from agentcron.emission.jitter import jitter_offset
from agentcron.jobs import JobSpec
from agentcron.ledger.records import NewWindow
from agentcron.messages import ASYNC_TASK, SYNC_TASK, RunMessage
from agentcron.windows import window_key, window_start


@dataclass(frozen=True)
class Emission:
    """One window to record and publish: where it goes and what it says."""

    window: NewWindow
    queue: str
    task: str
    due_at: datetime

    def message(self, attempt: int = 1) -> RunMessage:
        """The task message for this window."""
        return RunMessage.from_record(self.window, attempt)


TASKS = {AgentKind.SYNC: SYNC_TASK, AgentKind.ASYNC: ASYNC_TASK}
"""The Celery task of each agent kind."""


def task_for(spec: JobSpec) -> str:
    """The Celery task that runs ``spec``: by the agent's kind."""
    return ASYNC_TASK if spec.kind is AgentKind.ASYNC else SYNC_TASK


def emission_for(spec: JobSpec, slot: datetime, trigger: str = "schedule") -> Emission:
    """The emission of ``spec``'s window that contains ``slot`` (jitter from the window key)."""
    job = spec.job
    start = window_start(slot, job.window, job.tz)
    key = window_key(job.name, start)
    due_at = slot + jitter_offset(key, spec.jitter) if spec.jitter else slot
    window = NewWindow(job.name, start, key, slot, trigger)
    return Emission(window, spec.queue, task_for(spec), due_at)
