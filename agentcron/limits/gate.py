"""Holding fleet-wide limits: for a whole run (``Job(limits=[...])``) or one call
(``with ctx.limit("openai", tokens=n)`` / ``async with``).

A hold takes a concurrency slot (a lease in the store, renewed every ttl/3 by one keeper thread
per process, gone within its TTL when the holder dies), then one request and its tokens from the
rate window; waits poll with jittered backoff, or sleep as long as the rate window says. A run
that cannot get its limits within ``limit_wait`` gives up (the guard re-queues it, late, not
lost); a call inside an agent raises :class:`LimitWaitExceeded`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from agentcron.batching import PerLoop
from agentcron.clock import Clock
from agentcron.limits.base import LimitStore
from agentcron.limits.batcher import LimitBatcher
from agentcron.limits.declare import Limit

log = logging.getLogger("agentcron.limits")
LostHook = Callable[[str], None]
Observer = Callable[[str, str, int], None]  # (limit, "waiting"|"held"|"granted"|"refused", delta)


class LimitWaitExceeded(TimeoutError):
    """A limit could not be had within ``limit_wait`` seconds."""


class LimitGate:
    """One process's holds of fleet-wide limits, on one store."""

    def __init__(self, store: LimitStore, clock: Clock, *, wait: float,
                 rng: random.Random | None = None) -> None:  # fmt: skip
        self.store = store
        self.clock = clock
        self.wait = wait
        self.rng = rng or random.Random()
        self.waiting: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.granted: Counter[str] = Counter()
        self._slots: dict[str, tuple[Limit, LostHook | None]] = {}
        self._lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._stop = threading.Event()
        self._period = 10.0  # ttl/3 of the shortest-lived slot this process has held
        self.observe: Observer | None = None  # metrics (agentcron.spend.prom)
        self._batchers: PerLoop[LimitStore, LimitBatcher] = PerLoop(LimitBatcher)

    def _count(self, counter: Counter[str], name: str, event: str, delta: int) -> None:
        counter[name] += delta
        if self.observe is not None:
            self.observe(name, event, delta)

    # -- one step of an acquisition: 0.0 when done, else seconds to wait -------------------
    def _step(self, limit: Limit, tokens: int, holder: str, state: dict[str, int]) -> float:
        if limit.concurrency is not None and not state.get("slot"):
            if not self.store.acquire_slot(limit, holder):
                return self._backoff(state)
            state["slot"] = 1
        if limit.per_minute is not None or limit.tokens_per_minute is not None:
            wait = self.store.take_rate(limit, tokens)
            if wait > 0:
                return wait + self.rng.uniform(0, 0.02)
        return 0.0

    async def _astep(self, limit: Limit, tokens: int, holder: str, state: dict[str, int]) -> float:
        """:meth:`_step` with the calls of every run on this loop batched together."""
        batcher = self._batchers.get(self.store)
        if limit.concurrency is not None and not state.get("slot"):
            if not await batcher.acquire_slot(limit, holder):
                return self._backoff(state)
            state["slot"] = 1
        if limit.per_minute is not None or limit.tokens_per_minute is not None:
            wait = await batcher.take_rate(limit, tokens)
            if wait > 0:
                return wait + self.rng.uniform(0, 0.02)
        return 0.0

    def _backoff(self, state: dict[str, int]) -> float:
        tries = state["tries"] = state.get("tries", 0) + 1
        return self.rng.uniform(0.01, min(0.5, 0.02 * 2 ** min(tries, 5)))

    def _granted(self, limit: Limit, holder: str, on_lost: LostHook | None) -> None:
        with self._lock:
            self._count(self.granted, limit.name, "granted", 1)
            self._count(self.held, limit.name, "held", 1)
            if limit.concurrency is not None:
                self._slots[holder] = (limit, on_lost)
                self._period = min(self._period, limit.ttl / 3)
                self._start_keeper()

    def release(self, limit: Limit, holder: str) -> None:
        """Give the slot back (blocking; quick)."""
        if self._forget(limit, holder):
            try:
                self.store.release_slot(limit, holder)
            except Exception as exc:  # the lease expires within its TTL anyway
                log.warning("releasing limit %s failed (%s); it expires in %.0fs", limit.name,
                            type(exc).__name__, limit.ttl)  # fmt: skip

    def _forget(self, limit: Limit, holder: str) -> bool:
        with self._lock:
            self._count(self.held, limit.name, "held", -1)
            return self._slots.pop(holder, None) is not None

    async def arelease(self, limit: Limit, holder: str) -> None:
        """:meth:`release` from a coroutine (batched with the other runs on this loop)."""
        if self._forget(limit, holder):
            try:
                await self._batchers.get(self.store).release_slot(limit, holder)
            except Exception as exc:  # the lease expires within its TTL anyway
                log.warning("releasing limit %s failed (%s); it expires in %.0fs", limit.name,
                            type(exc).__name__, limit.ttl)  # fmt: skip

    def acquire(self, limit: Limit, tokens: int, holder: str, max_wait: float,
                on_lost: LostHook | None = None) -> bool:  # fmt: skip
        """Take ``limit`` in this thread, waiting at most ``max_wait`` seconds."""
        deadline = self.clock.monotonic() + max_wait
        state: dict[str, int] = {}
        self._count(self.waiting, limit.name, "waiting", 1)
        try:
            while (wait := self._step(limit, tokens, holder, state)) > 0:
                if self.clock.monotonic() + wait > deadline:
                    return self._refuse(limit, holder, state)
                if not state.get("noted"):
                    state["noted"] = self._note(limit, holder, deadline, True)
                self.clock.sleep(wait)
        finally:
            self._count(self.waiting, limit.name, "waiting", -1)
            if state.get("noted"):
                self._note(limit, holder, deadline, False)
        self._granted(limit, holder, on_lost)
        return True

    async def aacquire(self, limit: Limit, tokens: int, holder: str, max_wait: float,
                       on_lost: LostHook | None = None) -> bool:  # fmt: skip
        """Take ``limit`` without blocking the event loop, waiting at most ``max_wait`` s."""
        deadline = self.clock.monotonic() + max_wait
        state: dict[str, int] = {}
        self._count(self.waiting, limit.name, "waiting", 1)
        try:
            while True:
                wait = await self._astep(limit, tokens, holder, state)
                if wait <= 0:
                    break
                if self.clock.monotonic() + wait > deadline:
                    return self._refuse(limit, holder, state)
                if not state.get("noted"):
                    state["noted"] = await asyncio.to_thread(self._note, limit, holder, deadline,
                                                             True)  # fmt: skip
                await self.clock.asleep(wait)
        finally:
            self._count(self.waiting, limit.name, "waiting", -1)
            if state.get("noted"):
                await asyncio.to_thread(self._note, limit, holder, deadline, False)
        self._granted(limit, holder, on_lost)
        return True

    def _note(self, limit: Limit, holder: str, deadline: float, waiting: bool) -> int:
        """Show (or stop showing) ``holder`` as a waiter fleet-wide; never fails the hold."""
        try:
            if waiting:
                left = min(deadline - self.clock.monotonic(), 3600.0)
                self.store.mark_waiting(limit, holder, max(left, 0.0) + 5.0)
            else:
                self.store.unmark_waiting(limit, holder)
        except Exception as exc:
            log.warning("limit %s: noting a waiter failed: %s", limit.name, type(exc).__name__)
            return 0
        return 1

    def _refuse(self, limit: Limit, holder: str, state: dict[str, int]) -> bool:
        self._count(self.refused, limit.name, "refused", 1)
        if state.get("slot"):
            self.store.release_slot(limit, holder)  # rare (gave up while rate-limited)
        return False

    # -- the keeper: renews every held slot every ttl/3 --------------------------------------
    def _start_keeper(self) -> None:
        if self._keeper is None or not self._keeper.is_alive():
            self._keeper = threading.Thread(target=self._keep, name="agentcron-limits",
                                            daemon=True)  # fmt: skip
            self._keeper.start()

    def _keep(self) -> None:
        # Waits on an Event, not on the clock: a test's frozen clock must not race ahead.
        while True:
            with self._lock:
                held = [(limit, holder) for holder, (limit, _) in self._slots.items()]
            if self._stop.wait(self._period):
                return
            if held:
                self.renew(held)

    def close(self) -> None:
        """Stop renewing (held slots then expire within their TTL)."""
        self._stop.set()

    def renew(self, held: Sequence[tuple[Limit, str]]) -> None:
        """Renew ``held`` slots once; a lost one is logged and its hook told."""
        try:
            renewed = self.store.renew_slots(held)
        except Exception as exc:
            log.warning("renewing %d limit slots failed: %s", len(held), type(exc).__name__)
            return
        for (limit, holder), ok in zip(held, renewed, strict=True):
            if ok:
                continue
            with self._lock:
                entry = self._slots.get(holder)
            if entry is None:
                continue  # released meanwhile
            log.warning("limit %s: slot of %s was lost (expired)", limit.name, holder)
            if entry[1] is not None:
                entry[1](f"limit {limit.name!r} slot lost")

    def stats(self) -> dict[str, dict[str, int]]:
        """Per limit: waiting and held now, granted and refused so far (this process)."""
        names = set(self.waiting) | set(self.held) | set(self.refused) | set(self.granted)
        return {n: {"waiting": self.waiting[n], "held": self.held[n], "granted": self.granted[n],
                    "refused": self.refused[n]} for n in sorted(names)}  # fmt: skip


def new_holder(owner: str) -> str:
    """A holder id: who (a window key) and a unique suffix (one run may hold twice)."""
    return f"{owner[:160]}#{uuid.uuid4().hex[:12]}"


class Hold:
    """``with`` / ``async with`` one limit for one call inside an agent."""

    def __init__(self, gate: LimitGate, limit: Limit, tokens: int, owner: str,
                 wait: float | None = None) -> None:  # fmt: skip
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be a whole number >= 0, got {tokens!r}")
        self.gate, self.limit, self.tokens = gate, limit, tokens
        self.holder = new_holder(owner)
        # A call waits as long as it takes (the job's timeout bounds the run), unless told;
        # only a whole run's hold gives up after limit_wait (and is re-queued).
        self.wait = float("inf") if wait is None else wait

    def _give_up(self) -> LimitWaitExceeded:
        return LimitWaitExceeded(f"limit {self.limit.name!r} not available within "
                                 f"{self.wait:g}s")

    def __enter__(self) -> Hold:
        if not self.gate.acquire(self.limit, self.tokens, self.holder, self.wait):
            raise self._give_up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.release(self.limit, self.holder)

    async def __aenter__(self) -> Hold:
        if not await self.gate.aacquire(self.limit, self.tokens, self.holder, self.wait):
            raise self._give_up()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        await self.gate.arelease(self.limit, self.holder)


class RunLimits:
    """What ``ctx.limits`` is: the gate and the limits the run's job may name."""

    def __init__(self, gate: LimitGate, declared: Mapping[str, Limit]) -> None:
        self.gate, self.declared = gate, declared

    def hold(self, name: str, tokens: int = 0, owner: str = "", wait: float | None = None) -> Any:
        limit = self.declared.get(name)
        if limit is None:
            known = ", ".join(sorted(self.declared)) or "none declared"
            raise ValueError(f"no limit named {name!r} ({known})")
        return Hold(self.gate, limit, tokens, owner, wait)
