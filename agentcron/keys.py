"""Every Redis key agentcron uses, in one place.

| key                              | type        | what                                           |
|----------------------------------|-------------|------------------------------------------------|
| ``agentcron:lease:{job}``        | string, PX  | overlap lease; value = ``"{token}:{owner}"``;  |
|                                  |             | renewed every TTL/3 (compare-and-extend);      |
|                                  |             | released by compare-and-delete                 |
| ``agentcron:fence:{job}``        | counter     | fencing tokens (INCR)                          |
| ``agentcron:beat:leader``        | SQL row     | beat leader lease, in the ledger's ``leases``  |
|                                  |             | table (not Redis); standby takes over at TTL  |
| ``agentcron:cancel:{job}``       | string, PX  | cooperative cancellation (``cancel_other``):  |
|                                  |             | the fencing token of the holder to cancel;    |
|                                  |             | TTL 1 h (leases/cancel.py)                     |
| ``agentcron:heartbeat:{role}:{id}`` | string, PX | liveness of a beat or worker process          |

No key is ever written without a TTL except the fencing counters, which must only grow.
"""

from __future__ import annotations

PREFIX = "agentcron"
BEAT_LEADER = f"{PREFIX}:beat:leader"


def lease(job: str) -> str:
    """The overlap lease of ``job``."""
    return f"{PREFIX}:lease:{job}"


def fence(job: str) -> str:
    """The fencing-token counter of ``job``."""
    return f"{PREFIX}:fence:{job}"


def cancel(job: str) -> str:
    """The cancellation signal of ``job`` (holds the token of the holder to cancel)."""
    return f"{PREFIX}:cancel:{job}"


def heartbeat(role: str, ident: str) -> str:
    """The heartbeat key of a beat or worker process."""
    return f"{PREFIX}:heartbeat:{role}:{ident}"
