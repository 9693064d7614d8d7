"""``AgentScheduler``: the thread-based twin of ``AsyncAgentScheduler``, for code without a loop.

``start`` and ``stop`` are plain blocking calls. The schedule runs on one background thread that
owns a private event loop (dramatiq's asyncio-middleware pattern), driving the very same
scheduling core: sync agents run in its thread pool, async agents and async callbacks are awaited
to completion (the seed's thread scheduler never awaited them).
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

from agentcron.callbacks import Callback
from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.inprocess.async_scheduler import AsyncAgentScheduler
from agentcron.inprocess.options import SchedulerOptions, check_max_retries
from agentcron.schedules import parse_schedule


class AgentScheduler:
    """Runs ``agent`` on ``task`` at every slot of a schedule, on a background thread.

    Same arguments and statistics as :class:`AsyncAgentScheduler`.
    """

    def __init__(
        self,
        agent: Any,
        task: str,
        config: dict[str, Any] | None = None,
        on_success: Callback | None = None,
        on_failure: Callback | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        name: str | None = None,
        database_url: str | None = None,
        rng: random.Random | None = None,
        options: SchedulerOptions | None = None,
    ) -> None:
        self._core = AsyncAgentScheduler(
            agent, task, config, on_success, on_failure, clock=clock, name=name,
            database_url=database_url, rng=rng, options=options,
        )  # fmt: skip
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        """The job name (window keys are ``name@window_start``)."""
        return self._core.name

    @property
    def is_running(self) -> bool:
        """True between a successful ``start`` and the end of ``stop``."""
        return self._thread is not None and self._core.is_running

    def start(
        self, schedule_expr: str, max_retries: int = 3, run_immediately: bool = False
    ) -> bool:
        """Start the schedule on a background thread; False if already running.

        A bad expression raises :class:`~agentcron.errors.ConfigError` here, in the caller.
        """
        parse_schedule(schedule_expr, self._core.options.tz)
        check_max_retries(max_retries)
        with self._guard:
            if self.is_running:
                return False
            self._shutdown_loop()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_serve, args=(loop,), daemon=True,
                                      name=f"agentcron-scheduler-{self.name}")
            thread.start()
            self._loop, self._thread = loop, thread
            started = self._core.start(schedule_expr, max_retries, run_immediately)
            return asyncio.run_coroutine_threadsafe(started, loop).result()

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stop; wait up to ``timeout`` for the run in flight, then cancel it; return stats."""
        with self._guard:
            loop = self._loop
            if loop is None:
                return self._core.get_stats()
            stats = asyncio.run_coroutine_threadsafe(self._core.stop(timeout), loop).result()
            self._shutdown_loop()
            return stats

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    def get_stats(self) -> dict[str, Any]:
        """The same statistics as :meth:`AsyncAgentScheduler.get_stats`."""
        return self._core.get_stats()

    def __enter__(self) -> AgentScheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
