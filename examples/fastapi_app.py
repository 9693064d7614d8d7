"""FastAPI with an in-process agent schedule: start in the lifespan, stop on shutdown.

Run it with ``.venv/bin/uvicorn examples.fastapi_app:app``. The scheduler is built at import
time, outside any event loop; its asyncio primitives bind to uvicorn's loop when the lifespan
starts it. ``AGENTCRON_INPROCESS_SCHEDULE`` (default ``every 15 minutes``) sets the schedule;
with ``AGENTCRON_INPROCESS_LEDGER=1`` windows go through the ledger at ``AGENTCRON_DATABASE_URL``
(default: SQLite in ``./.agentcron``), so several replicas of this app run each window once and
``agentcron runs`` lists them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from agentcron.inprocess import AsyncAgentScheduler
from agentcron.settings import Settings
from examples.logscan import scan

log = logging.getLogger("examples.fastapi_app")
settings = Settings.from_env()
SCHEDULE = settings.extra.get("AGENTCRON_INPROCESS_SCHEDULE", "every 15 minutes")
USE_LEDGER = settings.extra.get("AGENTCRON_INPROCESS_LEDGER", "") in ("1", "true", "yes")

latest: dict[str, Any] = {}


async def remember(report: dict[str, Any]) -> None:
    """Async success callback: keep the latest report for the API."""
    latest.clear()
    latest.update(report)


scheduler = AsyncAgentScheduler(
    scan,
    "Scan the server log for anomalies",
    config={"log": "server.log", "error_threshold": 0.2},
    on_success=remember,
    on_failure=lambda error: log.error("log scan failed: %s", error),
    name="fastapi_log_scan",
    database_url=settings.database_url if USE_LEDGER else None,
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Start the schedule with the app; stop it (waiting for a run in flight) on shutdown."""
    await scheduler.start(SCHEDULE, max_retries=3, run_immediately=True)
    try:
        yield
    finally:
        stats = await scheduler.stop(timeout=10)
        log.warning("in-process scheduler stopped: %d run(s), %d succeeded",
                    stats["total_executions"], stats["successful_executions"])


app = FastAPI(title="agentcron in-process example", lifespan=lifespan)


@app.get("/stats")
async def stats() -> dict[str, Any]:
    """The scheduler's statistics."""
    return scheduler.get_stats()


@app.get("/report")
async def report() -> dict[str, Any]:
    """The latest log-scan report (empty until the first run)."""
    return latest
