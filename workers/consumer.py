"""The worker's consumer: Celery's, with a guard for the Redis transport on a lost connection,
and dead letters for what Celery would log and drop (refused content type, undecodable body,
unknown task, invalid task message): see :mod:`agentcron.deadletters`.

Why (product bug C, found by fault scenario S06 on the asyncio pool)
--------------------------------------------------------------------
On a broker connection loss Celery's ``Consumer.on_connection_error_after_connected`` calls
``connection.collect()`` and then ``ignore_errors(connection, connection.close)``. When the
Redis channel has a BRPOP outstanding at that moment (the consumer has spare prefetch capacity,
which is the normal state of an asyncio-pool worker and of any worker that is not saturated),
kombu's ``Channel.close()`` first reads the BRPOP reply, which raises a connection error *before*
the channel is marked closed; ``collect()`` swallows it and detaches the transport from the
connection (``transport.client = None``). The following ``close()`` then tries to restore the
unacknowledged messages through a new connection pool built from ``transport.client``, which is
None: ``AttributeError: 'NoneType' object has no attribute 'hostname'``. ``ignore_errors`` only
swallows the transport's connection and channel errors, so the worker logs "Unrecoverable
error" and exits. A late ack of a run that ends after the loss (its message still belongs to the
dead channel) fails the same way inside the event loop.

The guard: before Celery tears the lost connection down, every Redis channel of that connection
is *fenced*: once its transport has been detached, building connection parameters raises the
transport's own ``redis.exceptions.ConnectionError`` instead of the AttributeError. Celery and
kombu already treat that error as what it is (``ignore_errors`` and ``ack_log_error`` log it),
the worker reconnects, and the unacknowledged messages stay in kombu's unacked hash in Redis, from
which they come back after the visibility timeout (the guard and the ledger dedupe the repeated
delivery). A live channel (transport still attached) is not affected, so a restore that can reach
the broker still runs. New connections made on the reconnect are never fenced.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.worker.consumer.consumer import Consumer as CeleryConsumer
from kombu.exceptions import ContentDisallowed
from kombu.utils.json import dumps

from agentcron.deadletters import dead_letter

log = logging.getLogger("agentcron.workers")

_FENCED = "_agentcron_fenced"


class LostChannelError(redis.exceptions.ConnectionError):
    """A Redis channel of a broker connection that was lost and torn down was used again."""


def fence_channel(channel: Any) -> bool:
    """Make ``channel`` raise :class:`LostChannelError` once its transport is detached.

    Returns False (and does nothing) for a channel that is not a kombu Redis channel or that is
    already fenced.
    """
    original = getattr(channel, "_connparams", None)
    if original is None or getattr(channel, _FENCED, False):
        return False

    def connparams(*args: Any, **kwargs: Any) -> Any:
        transport = getattr(channel, "connection", None)
        if transport is None or getattr(transport, "client", None) is None:
            raise LostChannelError("the broker connection of this channel was lost")
        return original(*args, **kwargs)

    channel._connparams = connparams
    setattr(channel, _FENCED, True)
    return True


def fence_lost_connection(connection: Any) -> int:
    """Fence every Redis channel of the kombu ``connection``; returns how many were fenced."""
    transport = getattr(connection, "_transport", None)
    channels = list(getattr(transport, "channels", None) or ())
    default = getattr(connection, "_default_channel", None)
    if default is not None and default not in channels:
        channels.append(default)
    return sum(fence_channel(channel) for channel in channels)


def raw_entry(message: Any) -> bytes:
    """The queue entry a kombu message was made from, as it was on the queue (kombu's virtual
    transports keep the envelope as ``_raw``); rebuilt from the message's parts otherwise."""
    raw = getattr(message, "_raw", None)
    if not isinstance(raw, dict):
        try:
            raw = message.serializable()
        except Exception:
            raw = {"headers": dict(message.headers or {}), "properties": dict(message.properties),
                   "content-type": message.content_type}  # fmt: skip
    return dumps(raw).encode("utf-8")  # type: ignore[no-untyped-call,no-any-return]


def queue_of(message: Any) -> str:
    """The queue a message was delivered from (our queues are routed by their own name)."""
    info = getattr(message, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("exchange") or "?")


def _task_name(message: Any) -> str:
    headers = getattr(message, "headers", None) or {}
    return repr(headers.get("task"))[:100] if isinstance(headers, dict) else "?"


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer; fences the lost connection's channels before tearing it down, and
    moves what it cannot run to the dead-letter store (instead of Celery's log-and-drop)."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """A body in a refused content type (pickle, YAML) or that does not decode."""
        kind = "content_type" if isinstance(exc, ContentDisallowed) else "undecodable"
        dead_letter(f"{kind}: {type(exc).__name__}: {exc}", queue_of(message), raw_entry(message))
        message.ack()

    def on_unknown_message(self, body: Any, message: Any) -> None:
        """An envelope that is not a Celery task message (no task header)."""
        dead_letter("undecodable: not a Celery task message (no task header)",
                    queue_of(message), raw_entry(message))  # fmt: skip
        message.reject_log_error(log, self.connection_errors)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        """A task name this worker does not know."""
        dead_letter(f"unknown_task: no task named {_task_name(message)}", queue_of(message),
                    raw_entry(message))  # fmt: skip
        message.reject_log_error(log, self.connection_errors)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        """A task message Celery cannot parse (bad headers, bad arguments)."""
        dead_letter(f"undecodable: invalid task message: {type(exc).__name__}: {exc}",
                    queue_of(message), raw_entry(message))  # fmt: skip
        message.reject_log_error(log, self.connection_errors)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        """Fence the lost connection's channels, then do what Celery does."""
        connection = self.connection
        if connection is not None:
            fenced = fence_lost_connection(connection)
            log.debug("fenced %d channel(s) of the lost broker connection", fenced)
        super().on_connection_error_after_connected(exc)
