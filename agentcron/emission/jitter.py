"""Deterministic per-window jitter: derived from the window key, so every beat agrees."""

from __future__ import annotations

import hashlib
from datetime import timedelta


def jitter_offset(window_key: str, maximum: timedelta) -> timedelta:
    """An offset in ``[0, maximum)`` that depends only on ``window_key`` (millisecond steps)."""
    limit_ms = int(maximum.total_seconds() * 1000)
    if limit_ms <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(window_key.encode(), digest_size=8).digest()
    return timedelta(milliseconds=int.from_bytes(digest, "big") % limit_ms)
