"""In-process schedulers: one agent on a schedule, no broker (the seed's API on agentcron's core).

``AsyncAgentScheduler`` runs inside an asyncio application (FastAPI's lifespan), ``AgentScheduler``
on a background thread; both compute slots from the schedule, key every run by its window, retry
with the shared backoff, and, given ``database_url``, go through the ledger and lease guard.
"""

from agentcron.inprocess.async_scheduler import AsyncAgentScheduler
from agentcron.inprocess.options import SchedulerOptions
from agentcron.inprocess.stats import SchedulerStats
from agentcron.inprocess.sync_scheduler import AgentScheduler
from agentcron.runloop import RunReport

__all__ = [
    "AgentScheduler",
    "AsyncAgentScheduler",
    "RunReport",
    "SchedulerOptions",
    "SchedulerStats",
]
