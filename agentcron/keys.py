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
| ``agentcron:limit:{name}:slots`` | zset, PX    | holders of a fleet-wide limit scored by lease  |
|                                  |             | expiry (ms, Redis TIME); limits/slot_*.lua     |
| ``agentcron:limit:{name}:rate``  | zset, PX    | grants of a rate limit in its sliding window:  |
|                                  |             | ``"<nonce>:<tokens>"`` scored by grant ms      |
| ``agentcron:limit:{name}:rate:tokens`` | string, PX | the tokens of the grants in that window   |
| ``agentcron:limit:{name}:waiting`` | zset, PX  | holders waiting for the limit, scored by the   |
|                                  |             | expiry of that note (``agentcron limits``)     |

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


def limit_slots(name: str) -> str:
    """The held slots of the fleet-wide limit ``name``."""
    return f"{PREFIX}:limit:{name}:slots"


def limit_rate(name: str) -> str:
    """The sliding-window grant log of the fleet-wide limit ``name``."""
    return f"{PREFIX}:limit:{name}:rate"


def limit_rate_tokens(name: str) -> str:
    """The token sum of the grants in the sliding window of the limit ``name``."""
    return f"{PREFIX}:limit:{name}:rate:tokens"


def limit_waiting(name: str) -> str:
    """The holders waiting for the limit ``name`` (for ``agentcron limits``)."""
    return f"{PREFIX}:limit:{name}:waiting"
