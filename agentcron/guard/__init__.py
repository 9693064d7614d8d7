"""The guard around every run: exactly one success per window.

``run`` (the Guard: misfire, limits, overlap lease, budget, claim), ``attempts`` (the claimed
run: renewal, retries, fenced completion, callbacks), ``outcome`` (what a delivery did),
``modes`` (sync and async strategies), ``overlap`` (the job's lease under its overlap policy),
``release`` (giving the lease back) and ``stale`` (a run whose holder is gone).
"""

from agentcron.guard.outcome import Outcome, RunReport
from agentcron.guard.run import Guard

__all__ = ["Guard", "Outcome", "RunReport"]
