"""Options shared by both in-process schedulers, and the default job name of an agent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentcron.agents import Agent
from agentcron.delivery.targets import parse_targets
from agentcron.errors import ConfigError, Problem
from agentcron.instants import get_timezone
from agentcron.schedules import EPOCH
from agentcron.windows import is_job_name, window_start

_NOT_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class SchedulerOptions:
    """What an in-process schedule may tune beyond the seed's constructor arguments.

    ``tz`` and ``window`` decide the window key of a slot (as a job's ``tz``/``window``);
    ``backoff_base``/``backoff_cap`` feed :func:`agentcron.backoff.backoff_delay`; ``timeout``
    bounds one attempt (seconds, None for none); ``lease_ttl`` and ``overlap`` are used only
    with a ledger (``database_url``), and so is ``deliver`` (the targets of the reports that
    ``ctx.report`` keeps; this scheduler then runs the outbox's sender on its loop).
    """

    tz: str = "UTC"
    window: str = "slot"
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    timeout: float | None = None
    lease_ttl: float = 60.0
    overlap: str = "skip"
    deliver: tuple[str, ...] = ()

    def validate(self) -> SchedulerOptions:
        """Raise :class:`ConfigError` naming every bad option; return ``self`` otherwise."""
        problems: list[Problem] = []
        try:
            get_timezone(self.tz)
            window_start(EPOCH, self.window, self.tz)
        except ConfigError as exc:
            problems.extend(exc.problems)
        for name in ("backoff_base", "backoff_cap", "lease_ttl"):
            if getattr(self, name) < 0:
                problems.append(Problem(None, name, str(getattr(self, name)), "must be >= 0"))
        if self.timeout is not None and self.timeout <= 0:
            problems.append(Problem(None, "timeout", str(self.timeout), "must be > 0 or None"))
        try:
            parse_targets(self.deliver)
        except ConfigError as exc:
            problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)
        return self


def job_name_for(agent: Agent, name: str | None) -> str:
    """``name`` if given (checked), else the agent's function or class name.

    Processes that share a ledger should pass the same explicit ``name``.
    """
    if name is not None:
        if not is_job_name(name):
            reason = "a job name is 1-128 letters, digits, '_', '.', '-' (no '@', no spaces)"
            raise ConfigError([Problem(None, "name", str(name), reason)])
        return name
    tail = agent.ref.rpartition(":")[2].rpartition(".")[2]
    derived = _NOT_NAME.sub("_", tail).strip("_.-")[:128]
    return derived if is_job_name(derived) else "inprocess_agent"


def check_max_retries(max_retries: int) -> int:
    """``max_retries`` counts total attempts, so it must be a positive integer."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
        reason = "total attempts (1 initial + retries); must be an integer >= 1"
        raise ConfigError([Problem(None, "max_retries", repr(max_retries), reason)])
    return max_retries
