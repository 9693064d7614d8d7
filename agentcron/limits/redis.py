"""Fleet-wide limits in Redis: atomic Lua on the server's clock.

Keys (see :mod:`agentcron.keys`): ``agentcron:limit:{name}:slots`` is a sorted set of holders
scored by their lease expiry (ms, Redis TIME), PEXPIRE'd to the TTL on every write;
``agentcron:limit:{name}:rate`` a sorted set of grants (``"<nonce>:<tokens>"`` scored by grant
time) and ``agentcron:limit:{name}:rate:tokens`` their token sum, both PEXPIRE'd to the
period. Scripts: ``slot_acquire.lua``, ``slot_renew.lua``,
``rate_take.lua``, ``wait_mark.lua`` beside this module; ``agentcron:limit:{name}:waiting``
notes the waiters (scored by expiry) for ``agentcron limits``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.commands.core import Script

from agentcron import keys
from agentcron.leases.redis import run_scripts
from agentcron.limits.declare import Limit


@cache
def script_text(name: str) -> str:
    """The source of ``{name}.lua`` shipped with this package."""
    return (files("agentcron.limits") / f"{name}.lua").read_text(encoding="utf-8")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisLimitStore:
    """A :class:`~agentcron.limits.base.LimitStore` on a ``redis.Redis`` client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._acquire = client.register_script(script_text("slot_acquire"))
        self._renew = client.register_script(script_text("slot_renew"))
        self._take = client.register_script(script_text("rate_take"))
        self._mark = client.register_script(script_text("wait_mark"))

    def acquire_slot(self, limit: Limit, holder: str) -> bool:
        done: Any = self._acquire(keys=[keys.limit_slots(limit.name)],
                                  args=[holder, limit.concurrency or 0, _ms(limit.ttl)])
        return int(done) == 1

    def acquire_slots(self, slots: Sequence[tuple[Limit, str]]) -> list[bool]:
        """:meth:`acquire_slot` for many in one pipelined round trip."""
        calls = [(self._acquire, [keys.limit_slots(limit.name)],
                  [holder, limit.concurrency or 0, _ms(limit.ttl)]) for limit, holder in slots]
        return [int(done) == 1 for done in self._pipelined(calls)]

    def release_slots(self, slots: Sequence[tuple[Limit, str]]) -> list[None]:
        """:meth:`release_slot` for many in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for limit, holder in slots:
            pipe.zrem(keys.limit_slots(limit.name), holder)
        pipe.execute()
        return [None] * len(slots)

    def take_rates(self, takes: Sequence[tuple[Limit, int]]) -> list[float | Exception]:
        """:meth:`take_rate` for many in one pipelined round trip (errors per take)."""
        calls = [(self._take, [keys.limit_rate(limit.name), keys.limit_rate_tokens(limit.name)],
                  self._take_args(limit, tokens)) for limit, tokens in takes]
        return [self._waited(limit, tokens, wait)
                for (limit, tokens), wait in zip(takes, self._pipelined(calls), strict=True)]

    def _pipelined(self, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        return run_scripts(self.client, calls)  # the lease store's pipeline, NOSCRIPT handled

    def renew_slots(self, held: Sequence[tuple[Limit, str]]) -> list[bool]:
        if not held:
            return []
        args: list[Any] = []
        for limit, holder in held:
            args += [holder, _ms(limit.ttl)]
        done: Any = self._renew(keys=[keys.limit_slots(limit.name) for limit, _ in held],
                                args=args)
        return [int(d) == 1 for d in done]

    def release_slot(self, limit: Limit, holder: str) -> None:
        self.client.zrem(keys.limit_slots(limit.name), holder)

    @staticmethod
    def _take_args(limit: Limit, tokens: int) -> list[Any]:
        nonce = f"{time.monotonic_ns():x}{os.getpid():x}{os.urandom(3).hex()}"
        return [limit.per_minute or 0, limit.tokens_per_minute or 0, tokens, _ms(limit.period),
                nonce]

    @staticmethod
    def _waited(limit: Limit, tokens: int, wait: Any) -> float | Exception:
        if int(wait) < 0:
            return ValueError(f"{tokens} tokens exceed limit {limit.name!r}'s "
                              f"tokens_per_minute of {limit.tokens_per_minute}")
        return int(wait) / 1000

    def take_rate(self, limit: Limit, tokens: int) -> float:
        wait: Any = self._take(keys=[keys.limit_rate(limit.name),
                                     keys.limit_rate_tokens(limit.name)],
                               args=self._take_args(limit, tokens))
        result = self._waited(limit, tokens, wait)
        if isinstance(result, Exception):
            raise result
        return result

    def mark_waiting(self, limit: Limit, holder: str, seconds: float) -> None:
        self._mark(keys=[keys.limit_waiting(limit.name)], args=[holder, _ms(seconds)])

    def unmark_waiting(self, limit: Limit, holder: str) -> None:
        self.client.zrem(keys.limit_waiting(limit.name), holder)

    def waiters(self, limit: Limit) -> list[str]:
        return self._live(keys.limit_waiting(limit.name))

    def holders(self, limit: Limit) -> list[str]:
        return self._live(keys.limit_slots(limit.name))

    def _live(self, key: str) -> list[str]:
        now_s, now_us = self.client.time()
        now = int(now_s) * 1000 + int(now_us) // 1000
        found: Any = self.client.zrangebyscore(key, now + 1, "+inf")
        return [h.decode() if isinstance(h, bytes) else str(h) for h in found]

    def recent(self, limit: Limit) -> tuple[int, int]:
        now_s, now_us = self.client.time()
        now = int(now_s) * 1000 + int(now_us) // 1000
        found: Any = self.client.zrangebyscore(keys.limit_rate(limit.name),
                                               now - _ms(limit.period) + 1, "+inf")
        names = [h.decode() if isinstance(h, bytes) else str(h) for h in found]
        return len(names), sum(int(n.rsplit(":", 1)[1]) for n in names)
