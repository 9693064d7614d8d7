"""The limits a run holds from before its overlap lease until after its completion."""

from __future__ import annotations

import contextvars
import logging
import math
import random
import threading
from collections.abc import Callable

import sqlalchemy as sa

from agentcron.clock import Clock
from agentcron.errors import ConfigError, Problem
from agentcron.jobs import JobSpec
from agentcron.limits.declare import Limit
from agentcron.limits.gate import LimitGate, new_holder
from agentcron.settings import Settings

Held = list[tuple[Limit, str]]
log = logging.getLogger("agentcron.limits")


class SlotLoss:
    """A run's limit slots, lost or not: a slot lost mid-run (expired, taken) stops the run
    the way a lost window lease does, once the run has said how (:func:`stop_on_lost_slot`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reason: str | None = None
        self._stop: Callable[[str], None] | None = None

    def lost(self, reason: str) -> None:
        """The gate's keeper found a slot lost (its thread)."""
        with self._lock:
            first, self.reason = self.reason is None, self.reason or reason
            stop = self._stop
        if first and stop is not None:
            stop(reason)

    def attach(self, stop: Callable[[str], None]) -> None:
        """How to stop the run; called at once if a slot was already lost."""
        with self._lock:
            self._stop, reason = stop, self.reason
        if reason is not None:
            stop(reason)


_LOSS: contextvars.ContextVar[SlotLoss | None] = contextvars.ContextVar("limit_loss", default=None)


def stop_on_lost_slot(stop: Callable[[str], None]) -> None:
    """Stop the current run with ``stop(reason)`` (``ctx.cancel_requested``) if a limit slot
    it holds (:func:`hold_run_limits`, same task) is lost; nothing for a run without limits."""
    loss = _LOSS.get()
    if loss is not None:
        loss.attach(stop)


def open_limit_gate(settings: Settings, engine: sa.Engine, clock: Clock) -> LimitGate:
    """Redis limits when leases are in Redis, SQL limits (the ledger) otherwise."""
    if not math.isfinite(settings.limit_wait) or not 0 <= settings.limit_wait <= 86400:
        raise ConfigError([Problem(None, "AGENTCRON_LIMIT_WAIT", str(settings.limit_wait),
                                   "seconds between 0 and 86400")])  # fmt: skip
    if settings.lease_backend == "redis":
        from agentcron.limits.redis import RedisLimitStore
        from agentcron.timeouts import redis_client

        store = RedisLimitStore(redis_client(settings.redis_url, settings))
        return LimitGate(store, clock, wait=settings.limit_wait)
    from agentcron.limits.sql import SqlLimitStore

    return LimitGate(SqlLimitStore(engine, clock), clock, wait=settings.limit_wait)


async def hold_run_limits(gate: LimitGate, spec: JobSpec, owner: str) -> Held | None:
    """Every limit of ``spec`` (in declared order), or None (none kept) if one is not to be
    had within the gate's wait."""
    held: Held = []
    loss = SlotLoss()
    for name in spec.limits:
        limit = spec.declared_limits[name]
        holder = new_holder(owner)
        try:
            got = await gate.aacquire(limit, 0, holder, gate.wait, on_lost=loss.lost)
        except Exception as exc:  # the store is unreachable: re-queue, as for a busy limit
            log.warning("limit %s unavailable (%s): the run is re-queued", name,
                        type(exc).__name__)  # fmt: skip
            got = False
        if not got:
            await release_run_limits(gate, held)
            return None
        held.append((limit, holder))
    _LOSS.set(loss)  # this task's run: see stop_on_lost_slot
    return held


async def release_run_limits(gate: LimitGate, held: Held) -> None:
    """Give back what :func:`hold_run_limits` took (a SQL store's writes off the loop)."""
    _LOSS.set(None)
    for limit, holder in reversed(held):
        await gate.arelease(limit, holder)


def requeue_delay(gate: LimitGate, rng: random.Random) -> float:
    """How long a run that waited in vain stays away before its message comes back."""
    return round(rng.uniform(1.0, max(1.0, min(60.0, gate.wait))), 3)
