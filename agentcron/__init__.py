"""agentcron: AI-agent jobs on a clock, exactly one successful run per schedule window."""

from agentcron.agents import Agent, AgentKind, resolve_agent
from agentcron.backoff import backoff_delay
from agentcron.callbacks import asafe_call, safe_call
from agentcron.clock import Clock, FrozenClock, SystemClock
from agentcron.context import BudgetExceeded, RunCancelled, RunContext
from agentcron.errors import ConfigError, Problem
from agentcron.inprocess import AgentScheduler, AsyncAgentScheduler, SchedulerOptions
from agentcron.jobs import Job, JobSpec, compile_jobs
from agentcron.limits.declare import Limit
from agentcron.schedule_file import load_jobs
from agentcron.schedules import Schedule, parse_schedule
from agentcron.spend.budgets import Budget
from agentcron.windows import parse_window_key, window_key, window_start

__all__ = [
    "Agent",
    "AgentKind",
    "AgentScheduler",
    "AsyncAgentScheduler",
    "Budget",
    "BudgetExceeded",
    "Clock",
    "ConfigError",
    "FrozenClock",
    "Job",
    "JobSpec",
    "Limit",
    "Problem",
    "RunCancelled",
    "RunContext",
    "Schedule",
    "SchedulerOptions",
    "SystemClock",
    "asafe_call",
    "backoff_delay",
    "compile_jobs",
    "load_jobs",
    "parse_schedule",
    "parse_window_key",
    "resolve_agent",
    "safe_call",
    "window_key",
    "window_start",
]
