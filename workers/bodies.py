"""The task-body decoder of the worker process (kombu's registry entry for ``application/json``).

Imported by :mod:`workers.transport`, so every process that uses the worker's transport decodes
task bodies with it.
"""

from __future__ import annotations

from contextlib import suppress
from sys import intern
from typing import Any

from kombu.serialization import registry
from kombu.utils.json import dumps

from agentcron.deadletters import json_loads

_SHARED_VALUES = frozenset({"job", "trigger"})  # run-message fields that repeat across messages


def _shared_keys(body: Any) -> Any:
    """A protocol 2 body (``[args, kwargs, options]``) whose dicts have interned keys (and the
    job and trigger values): the request keeps it for as long as its run goes on, and the
    decoder makes fresh key strings for every message (ten thousand copies of ``"window_key"``)."""
    if not isinstance(body, list):
        return body
    return [{intern(k): intern(v) if k in _SHARED_VALUES and isinstance(v, str) else v
             for k, v in part.items()} if isinstance(part, dict) else part
            for part in body]  # fmt: skip


class SharedBodies:
    """Celery decodes a task body twice: its strategy (to make the request, which keeps the
    result) and its tracer (to call the task). The tracer gets the very bytes object the
    strategy decoded, so the strategy's result is kept here for it, once, by identity: one
    decode per message, and one copy of its strings in memory while the run goes on. Celery
    reads the decoded args, kwargs and options and never changes them. At most ``size``
    results wait (bodies decoded and never traced: a revoked or refused message). Only where
    strategy and tracer share a process (``keep``: set by the asyncio pool); a prefork
    worker's tracer runs in a child, which is handed a copy of the bytes."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self.keep = False
        self._waiting: dict[int, tuple[bytes, Any]] = {}

    def loads(self, data: Any) -> Any:
        """``data`` decoded (:func:`agentcron.deadletters.json_loads`), or the result kept for it."""
        if not self.keep or not isinstance(data, bytes):
            return json_loads(data)
        kept = self._waiting.pop(id(data), None)
        if kept is not None and kept[0] is data:
            return kept[1]
        result = _shared_keys(json_loads(data))
        if len(self._waiting) >= self.size:
            with suppress(StopIteration, RuntimeError, KeyError):  # another thread took one
                del self._waiting[next(iter(self._waiting))]
        self._waiting[id(data)] = (data, result)
        return result


BODIES = SharedBodies()
registry.register("json", dumps, BODIES.loads, content_type="application/json",  # type: ignore[no-untyped-call]
                  content_encoding="utf-8")  # fmt: skip
