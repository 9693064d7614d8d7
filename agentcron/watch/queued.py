"""What is waiting on the broker: window keys of queued and reserved run messages, queue depths.

The watchdog asks before re-publishing a window left ``scheduled``. On the Redis transport the
messages are JSON in the queue lists (one per priority band) and, once a worker reserved them,
in kombu's ``unacked`` hash; other transports cannot be inspected (None: the watchdog falls
back to an age threshold).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from agentcron.settings import Settings

log = logging.getLogger("agentcron.operate")


class QueuedWindows(Protocol):
    """What is waiting on the broker."""

    def window_keys(self) -> set[str] | None:
        """Window keys of every queued or reserved run message; None when unknown."""
        ...


def message_window_key(raw: bytes | str) -> str | None:
    """The ``window_key`` kwarg of one kombu JSON message (or None)."""
    try:
        data = json.loads(raw)
        if isinstance(data, list):  # the unacked hash: [message, exchange, routing_key]
            data = data[0]
        body = data["body"]
        if data.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        payload = json.loads(body)
        kwargs = payload[1] if isinstance(payload, list) else payload.get("kwargs", {})
        key = kwargs.get("window_key")
        return key if isinstance(key, str) else None
    except (ValueError, KeyError, TypeError, IndexError):
        return None


class RedisQueueInspector:
    """Reads the Redis transport's queue lists (every priority band) and its ``unacked`` hash."""

    PRIORITY_SEPARATOR = "\x06\x16"

    def __init__(self, client: Any, queues: Sequence[str], limit: int = 200_000) -> None:
        self.client = client
        self.queues = list(queues)
        self.limit = limit

    def lists(self) -> list[str]:
        """Every Redis list that holds messages of our queues."""
        bands = ("", *(f"{self.PRIORITY_SEPARATOR}{n}" for n in (3, 6, 9)))
        return [f"{queue}{band}" for queue in self.queues for band in bands]

    def window_keys(self) -> set[str] | None:
        """Window keys on the queues and reserved by workers; None if the queues are too long."""
        keys: set[str] = set()
        for name in self.lists():
            if self.client.llen(name) > self.limit:
                return None
            for start in range(0, self.limit, 5000):
                chunk = self.client.lrange(name, start, start + 4999)
                keys.update(k for k in map(message_window_key, chunk) if k)
                if len(chunk) < 5000:
                    break
        for raw in self.client.hvals("unacked"):
            key = message_window_key(raw)
            if key:
                keys.add(key)
        return keys


def queue_inspector(settings: Settings, queues: Sequence[str]) -> QueuedWindows | None:
    """A Redis queue inspector when the broker is Redis, else None (the age rule applies)."""
    from agentcron.settings import is_redis_url

    if not is_redis_url(settings.broker_url):
        return None
    from agentcron.timeouts import redis_client

    return RedisQueueInspector(redis_client(settings.broker_url, settings), queues)


def queue_depths(app: Any, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting on each queue (any kombu transport); a queue never declared counts 0."""
    depths: dict[str, int] = {}
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        for queue in queues:
            try:
                depths[queue] = int(channel.queue_declare(queue, passive=True).message_count)
            except conn.channel_errors as exc:  # passive declare of a queue nobody declared yet
                log.debug("queue %s not declared (%s)", queue, type(exc).__name__)
                depths[queue] = 0
    return depths
