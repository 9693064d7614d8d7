"""One backoff rule for every runner: exponential, full jitter, capped."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Full jitter (AWS architecture blog): uniform in ``[0, min(cap, base * 2**(attempt-1))]``.
    Deterministic for a seeded ``rng``.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    if base < 0 or cap < 0:
        raise ValueError("backoff base and cap must be >= 0")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return (rng or random).uniform(0.0, ceiling)
