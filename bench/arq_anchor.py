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


async def _serve() -> None:
    """Enqueue jobs on request: read a count per stdin line, enqueue that many arq jobs (50
    concurrently, as ``bench.async_agents.arq_enqueue`` does), answer ``done``."""
    import sys

    from arq import create_pool

    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        n = int(line)
        for first in range(0, n, 50):
            await asyncio.gather(*(pool.enqueue_job("arq_agent")
                                   for _ in range(first, min(n, first + 50))))  # fmt: skip
        print("done", flush=True)
    await pool.aclose()


if __name__ == "__main__":
    # ``<arq env>/bin/python -m bench.arq_anchor``: the producer side of the anchor, in arq's
    # own environment, started before any clock so its start-up is never timed.
    asyncio.run(_serve())
