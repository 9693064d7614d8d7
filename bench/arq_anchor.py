"""The arq anchor of ``bench.async_agents``, importable with nothing but arq installed.

Run it from arq's own environment (its supported redis-py), e.g.
``/path/to/arq-venv/bin/arq bench.arq_anchor.ArqSettings``; ``bench.async_agents --arq-bin``
does that.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq.connections import RedisSettings

REDIS_URL = os.environ.get("AGENTCRON_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
COUNTER = "bench:done"


async def arq_agent(ctx: dict[str, Any]) -> None:
    """arq's job: sleep (the LLM call), then count with arq's own Redis pool."""
    await asyncio.sleep(0.2)
    await ctx["redis"].incr(COUNTER)


class ArqSettings:
    """``arq bench.arq_anchor.ArqSettings``: 1 process, max_jobs=1000."""

    functions = [arq_agent]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    max_jobs = 1000
    keep_result = 0
