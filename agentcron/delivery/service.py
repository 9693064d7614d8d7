"""The sender's loop, run as a task on an event loop (the async worker's, or ``up``'s).

Each pass runs :meth:`Sender.run_once` in a thread (the sends and ledger writes block), then
sleeps ``AGENTCRON_DELIVERY_INTERVAL`` seconds when the pass found nothing; gauges are refreshed
every ``gauge_every`` seconds. A failing pass (the ledger down) is logged and tried again after
the shared backoff; the loop never ends on its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
from collections.abc import Callable

from agentcron.backoff import backoff_delay
from agentcron.clock import Clock
from agentcron.delivery.sender import Sender
from agentcron.errors import ConfigError
from agentcron.settings import Settings, redact_url

log = logging.getLogger("agentcron.delivery")


async def run_sender(make: Callable[[], Sender], clock: Clock, interval: float,
                     gauge_every: float = 15.0) -> None:  # fmt: skip
    """Send forever (until cancelled); ``make`` builds the sender on first use, in a thread."""
    sender: Sender | None = None
    failures = 0
    next_gauges = 0.0
    rng = random.Random()
    try:
        while True:
            try:
                if sender is None:
                    sender = await asyncio.to_thread(make)
                taken = await asyncio.to_thread(sender.run_once)
                if clock.monotonic() >= next_gauges:
                    next_gauges = clock.monotonic() + gauge_every
                    await asyncio.to_thread(sender.metrics.refresh, sender.outbox, clock.now())
                failures = 0
            except Exception as exc:
                failures += 1
                delay = backoff_delay(failures, max(interval, 0.1), 60.0, rng)
                # A ConfigError's text is safe to print (URLs in it are redacted).
                why = str(exc) if isinstance(exc, ConfigError) else type(exc).__name__
                log.warning("delivery pass failed (%s); again in %.1fs", why, delay)
                await clock.asleep(delay)
                continue
            if taken == 0:
                await clock.asleep(interval)
    finally:
        if sender is not None:
            sender.close()


class DeliveryTask:
    """A :func:`run_sender` task started on ``loop`` from another thread; :meth:`stop` ends it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, make: Callable[[], Sender], clock: Clock,
                 interval: float) -> None:  # fmt: skip
        self.loop = loop
        self._future: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(
            run_sender(make, clock, interval), loop)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the loop (a send in flight finishes in its thread) and wait for it."""
        self._future.cancel()
        try:
            self._future.result(timeout)
        except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
            pass
        except Exception:
            log.exception("the delivery loop ended with an error")


def describe_delivery(settings: Settings) -> str:
    """One line for ``agentcron up``'s banner: where report emails go (password hidden)."""
    if settings.smtp_url:
        return f"reports: email via {redact_url(settings.smtp_url)} from {settings.mail_from}"
    return (f"reports: email written to {settings.data_dir / 'outbox'}/ "
            "(set AGENTCRON_SMTP_URL to send it)")
