# kombu is only partly annotated: its functions are untyped here.
# mypy: disable-error-code="no-untyped-call"
"""kombu's Redis transport with fewer round trips per message (``broker_transport`` of the app).

kombu delivers one message per ``BRPOP`` and then writes that message's unacked record (a
``MULTI``/``ZADD``/``HSET``/``EXEC`` pipeline); every ack is another pipeline; and each of those
builds a fresh ``redis.Redis`` client object (in redis-py 8 that alone costs more than the round
trip). A worker that keeps a thousand 200 ms runs in flight spends most of its main thread there.

This transport keeps kombu's data layout, its visibility timeout and its restore of unacked
messages; it only changes how many messages one round trip carries:

- after a ``BRPOP`` returns a message, up to ``fetch_batch`` more are taken from the same queue
  with one ``RPOP key count`` (never more than the consumer's free prefetch), and the unacked
  records of all of them are written in one pipeline *before* any of them is handed to Celery;
- acks are collected and removed from the unacked index in one pipeline at the end of the event
  loop iteration that made them (Celery runs acks on the consumer's loop), and at channel close;
- the channel reuses one client object for its pipelines (the client is thread-safe: every
  command takes a connection from the pool);
- JSON (the envelope here, and the task body) is decoded by
  :func:`agentcron.deadletters.json_loads`: kombu's result, without kombu's per-call decoder and
  object hook for text that has nothing for the hook; the body once, not twice
  (:class:`workers.bodies.SharedBodies`, registered for ``application/json`` on import).

An entry that is not a deliverable JSON envelope (or is over ``AGENTCRON_MESSAGE_MAX_BYTES``, or
in a refused content type) is moved to the dead-letter store (:mod:`agentcron.deadletters`)
before anything is delivered; the rest of its batch is delivered as usual.

A message is still acknowledged only after its run's ledger row is committed; one whose ack had not
reached Redis when the worker died comes back after the visibility timeout, and the ledger
recognises it as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from queue import Empty
from sys import intern
from time import time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps
from redis.exceptions import OutOfMemoryError

from agentcron.deadletters import PoisonEntry, dead_letter, decode_entry, max_message_bytes
from workers import bodies  # noqa: F401  (registers the task-body decoder)
from workers.deliveries import DELIVERY_ERRORS, drop_poison_delivery

# Header and property values that repeat in every message of a queue.
_SHARED_VALUES = frozenset({"lang", "task", "origin", "content-type", "content-encoding",
                            "body_encoding", "exchange", "routing_key", "delivery_mode"})


def _shared(d: dict[str, Any]) -> dict[str, Any]:
    return {intern(k): intern(v) if k in _SHARED_VALUES and isinstance(v, str) else v
            for k, v in d.items()}  # fmt: skip


def _compact(payload: Any) -> Any:
    """The envelope with its keys (and the values every message repeats) interned: a worker
    holding ten thousand messages keeps one copy of ``"content-type"``, not ten thousand."""
    if not isinstance(payload, dict):
        return payload
    payload = _shared(payload)
    for part in ("headers", "properties"):
        if isinstance(payload.get(part), dict):
            payload[part] = _shared(payload[part])
    properties, headers = payload.get("properties"), payload.get("headers")
    if isinstance(properties, dict) and isinstance(properties.get("delivery_info"), dict):
        properties["delivery_info"] = _shared(properties["delivery_info"])
    if isinstance(headers, dict) and isinstance(properties, dict):  # one copy of the task id
        task_id = headers.get("id")
        for d, key in ((headers, "root_id"), (properties, "correlation_id")):
            if task_id is not None and d.get(key) == task_id:
                d[key] = task_id
    return payload


def _release_delivered(payload: dict[str, Any]) -> None:
    """Let go of what a delivered envelope no longer needs while its run goes on (ten
    thousand runs in flight keep ten thousand messages). The message decoded its body when it
    was made, and its unacked record in Redis keeps the whole envelope for a restore: the
    base64 text can go. Celery's request copied the headers when the message was delivered
    (the delivery is synchronous) and never reads the message's own again, nor the envelope
    (``message._raw``: kombu writes the unacked record from it, and a dead letter is taken
    from it, before and during the delivery; an ack, a reject or a restore goes by the delivery
    tag, and a restore reads the envelope back from Redis): both are emptied."""
    headers = payload.get("headers")
    if isinstance(headers, dict):
        headers.clear()
    payload.clear()


def sound_entries(raws: list[bytes], queue: str) -> list[dict[str, Any]]:
    """The envelopes of the raw ``raws`` taken from ``queue``; the others are dead-lettered."""
    max_bytes = max_message_bytes()
    payloads = []
    for raw in raws:
        try:
            payloads.append(_compact(decode_entry(raw, max_bytes=max_bytes)))
        except PoisonEntry as exc:
            dead_letter(exc.reason, queue, raw)
    return payloads


class QoS(kombu_redis.QoS):
    """kombu's QoS; unacked records written by the channel in bulk, acks flushed in bulk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: set[str] = set()
        self._pending_acks: list[str] = []

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self._recorded:  # the channel already wrote its unacked record
            self._recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        self._pending_acks.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)
        if len(self._pending_acks) >= 1000:
            self.flush_acks()

    def flush_acks(self) -> None:
        """Remove the acked messages from the unacked index, in one round trip."""
        tags, self._pending_acks = self._pending_acks, []
        if not tags:
            return
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            pipe.zrem(self.unacked_index_key, *tags).hdel(self.unacked_key, *tags).execute()

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        self.flush_acks()
        super().reject(delivery_tag, requeue=requeue)

    def restore_unacked(self, client: Any = None) -> None:
        self.flush_acks()
        super().restore_unacked(client)


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, delivering up to ``fetch_batch`` messages per poll."""

    QoS = QoS
    fetch_batch = 100
    from_transport_options = (*kombu_redis.Channel.from_transport_options,  # type: ignore[assignment]
                              "fetch_batch")
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = self._create_client()
        yield shared

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next poll reconnects
                raise
            if not reply:
                raise Empty()
            key, first = reply
            queue = bytes_to_str(key).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            payloads = sound_entries([first, *self._more(key)], queue)
            if not payloads:
                raise Empty()  # every entry was dead-lettered
            self._record_unacked(payloads)
            for payload in payloads:
                self._deliver_one(payload, queue)
                _release_delivered(payload)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def _deliver_one(self, payload: dict[str, Any], queue: str) -> None:
        """Hand one checked envelope to Celery; one whose shape still breaks kombu or Celery is
        dead-lettered (its unacked record removed) so that the rest of the batch goes on. Any
        other error (a lost connection, a broken pool) propagates, as it did before."""
        try:
            self.connection._deliver(payload, queue)
        except self.connection_errors:
            raise
        except DELIVERY_ERRORS as exc:
            drop_poison_delivery(self, payload, queue, exc)

    def _more(self, key: bytes) -> list[bytes]:
        """Up to ``fetch_batch`` more messages of the queue ``key``, within the free prefetch."""
        if self._closing or self.fetch_batch <= 0:
            return []
        room = self.qos.can_consume_max_estimate()
        count = self.fetch_batch if room is None else min(self.fetch_batch, room - 1)
        if count <= 0:
            return []
        with self.conn_or_acquire() as client:
            return list(client.rpop(key, count) or [])

    def _record_unacked(self, payloads: list[dict[str, Any]]) -> None:
        """kombu's unacked records (index score, ``[payload, exchange, routing key]``), in bulk."""
        if len(payloads) < 2:
            return  # one message: kombu's own append writes it
        now, scores, records = time(), {}, {}
        for payload in payloads:
            try:
                props = payload["properties"]
                tag, delivery = props["delivery_tag"], props["delivery_info"]
                record = dumps([payload, delivery["exchange"], delivery["routing_key"]])
            except (KeyError, TypeError):
                continue  # malformed: kombu's own append handles (and Celery rejects) it
            scores[tag], records[tag] = now, record
        if not records:
            return
        with self.conn_or_acquire() as client:
            client.pipeline().zadd(self.unacked_index_key, scores).hset(
                self.unacked_key, mapping=records).execute()
        self.qos._recorded.update(records)

    def flush_acks(self) -> None:
        """Send the pending acks, if this channel ever made its QoS; a broker that is gone
        loses them, and those messages come back after the visibility timeout (deduped)."""
        qos = self._qos
        if qos is not None and qos._pending_acks:
            with suppress(*self.connection_errors):
                qos.flush_acks()

    def close(self) -> None:
        if not self.closed:
            self.flush_acks()
        super().close()


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`; flushes acks every loop iteration.

    An ``OutOfMemoryError`` reply (Redis at ``maxmemory`` with ``noeviction``) counts as a
    connection error: the worker backs off and reconnects (Celery's connection retry) instead of
    exiting with "Unrecoverable error"; acks it could not write come back as duplicates after the
    visibility timeout (issue 20, scenario S21).
    """

    Channel = Channel
    connection_errors = (*kombu_redis.Transport.connection_errors, OutOfMemoryError)

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)

        def flush_acks() -> None:
            for channel in list(self.channels):
                channel.flush_acks()

        loop.on_tick.add(flush_acks)
