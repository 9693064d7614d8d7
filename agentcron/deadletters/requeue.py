"""Putting a dead letter back on its queue, as it was (``agentcron dead-letters --requeue``)."""

from __future__ import annotations

from agentcron.deadletters.store import DeadLetter, DeadLetterStore
from agentcron.settings import is_redis_url

CONNECT_TIMEOUT = 5.0


class RequeueError(ValueError):
    """A dead letter that cannot be requeued (unknown id, stored truncated)."""


def requeue(store: DeadLetterStore, broker_url: str, letter_id: int) -> DeadLetter:
    """Push dead letter ``letter_id`` back onto its queue, then remove it from the store.

    The entry goes back byte for byte: a worker that still cannot run it dead-letters it again
    (under a new id). Raises :class:`RequeueError` for an unknown or truncated letter; broker
    and database errors propagate.
    """
    letter = store.get(letter_id)
    if letter is None:
        raise RequeueError(f"no dead letter #{letter_id}")
    if letter.truncated:
        raise RequeueError(f"dead letter #{letter_id} was stored truncated ({letter.size} bytes, "
                           f"over the limit of {store.raw_max_bytes}): it cannot be requeued")
    push_raw(broker_url, letter.queue, letter.raw)
    store.remove(letter_id)
    return letter


def push_raw(broker_url: str, queue: str, raw: bytes) -> None:
    """Append ``raw`` to ``queue`` of the broker, where the worker takes entries from."""
    if is_redis_url(broker_url):
        import redis

        client = redis.Redis.from_url(broker_url, socket_connect_timeout=CONNECT_TIMEOUT,
                                      socket_timeout=CONNECT_TIMEOUT)  # fmt: skip
        try:
            client.lpush(queue, raw)  # kombu's Redis queues: LPUSH in, BRPOP out
        finally:
            client.close()
        return
    _push_sqla(broker_url, queue, raw)


def _push_sqla(broker_url: str, queue: str, raw: bytes) -> None:
    """A new row in kombu's SQLAlchemy message table (its own model, its own session)."""
    from kombu.connection import Connection

    with Connection(broker_url, connect_timeout=CONNECT_TIMEOUT) as conn:  # type: ignore[no-untyped-call]
        channel = conn.default_channel
        queue_row = channel._get_or_create(queue)
        channel.session.add(channel.message_cls(raw.decode("utf-8", "replace"), queue_row))
        channel.session.commit()
