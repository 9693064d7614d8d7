"""What a store of fleet-wide limits does (Redis for a fleet, SQL for the embedded default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agentcron.limits.declare import Limit


class LimitStore(Protocol):
    """Slots (concurrency) and a sliding-window rate log (requests and tokens) per limit."""

    def acquire_slot(self, limit: Limit, holder: str) -> bool:
        """Take one of ``limit.concurrency`` slots for ``limit.ttl`` seconds; False if full."""
        ...

    def renew_slots(self, held: Sequence[tuple[Limit, str]]) -> list[bool]:
        """Extend each held slot by its TTL; False where it was lost (expired)."""
        ...

    def release_slot(self, limit: Limit, holder: str) -> None:
        """Give a slot back (a no-op when it is gone)."""
        ...

    def take_rate(self, limit: Limit, tokens: int) -> float:
        """Take one request and ``tokens``: 0.0 when granted, else seconds to wait first.

        ValueError when ``tokens`` exceeds ``limit.tokens_per_minute`` (never grantable).
        """
        ...

    def mark_waiting(self, limit: Limit, holder: str, seconds: float) -> None:
        """Note ``holder`` as waiting for ``limit`` (the note expires after ``seconds``)."""
        ...

    def unmark_waiting(self, limit: Limit, holder: str) -> None:
        """``holder`` waits no more."""
        ...

    def waiters(self, limit: Limit) -> list[str]:
        """The holders waiting for ``limit`` now (fleet-wide)."""
        ...

    def holders(self, limit: Limit) -> list[str]:
        """The live holders of ``limit``'s slots."""
        ...

    def recent(self, limit: Limit) -> tuple[int, int]:
        """``(requests, tokens)`` granted in the current sliding window."""
        ...
