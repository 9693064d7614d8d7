"""Fleet-wide limits: concurrency slots and rate windows shared by every worker of a fleet."""

from agentcron.limits.declare import Limit, named_limits
from agentcron.limits.gate import Hold, LimitGate, LimitWaitExceeded, RunLimits

__all__ = ["Hold", "Limit", "LimitGate", "LimitWaitExceeded", "RunLimits", "named_limits"]
