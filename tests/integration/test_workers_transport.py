"""workers/transport.py against the real Redis: batched delivery, bulk unacked records and acks,
prefetch respected, unacked messages restored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kombu.asynchronous import Hub
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer, Producer

from workers.app import TRANSPORT, celery_config
from workers.transport import Transport

pytestmark = pytest.mark.integration
QUEUE = Queue("t.batch", Exchange("t.batch"), routing_key="t.batch")


@pytest.fixture
def connection(redis_client: Any, redis_url: str) -> Iterator[Connection]:
    conn = Connection(redis_url, transport=TRANSPORT)
    yield conn
    conn.release()


def publish(conn: Connection, n: int) -> None:
    producer = Producer(conn.channel())
    for i in range(n):
        producer.publish({"i": i}, exchange=QUEUE.exchange, routing_key="t.batch",
                         declare=[QUEUE], serializer="json")  # fmt: skip


def consume(conn: Connection, prefetch: int) -> tuple[Any, list[Any]]:
    got: list[Any] = []
    channel = conn.channel()
    consumer = Consumer(channel, [QUEUE], callbacks=[lambda body, msg: got.append(msg)],
                        accept=["json"])  # fmt: skip
    consumer.qos(prefetch_count=prefetch)
    consumer.consume()
    return channel, got


def test_the_app_uses_it_on_redis_only() -> None:
    from agentcron.settings import Settings

    redis_conf = celery_config(Settings.from_env({"AGENTCRON_BROKER_URL": "redis://h:6379/0"}))
    sqlite_conf = celery_config(Settings.from_env({"AGENTCRON_BROKER_URL": "sqla+sqlite:///b.db"}))
    assert redis_conf["broker_transport"] == TRANSPORT
    assert "broker_transport" not in sqlite_conf
    assert isinstance(Connection("redis://h:6379/0", transport=TRANSPORT).transport, Transport)


def test_one_poll_delivers_a_batch_and_records_it_unacked_first(
    connection: Connection, redis_client: Any
) -> None:
    publish(connection, 30)
    _channel, got = consume(connection, prefetch=10)
    connection.drain_events(timeout=5)
    assert len(got) == 10  # BRPOP + one RPOP of 9: the free prefetch, not more
    assert redis_client.llen("t.batch") == 20
    tags = {m.delivery_tag for m in got}
    assert {t.decode() for t in redis_client.hkeys("unacked")} == tags
    assert redis_client.zcard("unacked_index") == 10
    assert [m.payload["i"] for m in got] == list(range(10))  # FIFO order kept
    # Ten thousand held messages keep one copy of what every envelope repeats, no base64 text.
    assert all("body" not in m._raw for m in got)
    first, second = (next(k for k in m.properties if k == "body_encoding") for m in got[:2])
    assert first is second


def test_acks_are_flushed_in_bulk_on_the_loop_tick(
    connection: Connection, redis_client: Any
) -> None:
    publish(connection, 5)
    _channel, got = consume(connection, prefetch=10)
    hub = Hub()
    connection.transport.register_with_event_loop(connection.connection, hub)
    connection.drain_events(timeout=5)
    assert len(got) == 5
    for message in got:
        message.ack()
    assert redis_client.hlen("unacked") == 5  # not yet written: one round trip per loop tick
    for tick in list(hub.on_tick):
        tick()
    assert redis_client.hlen("unacked") == 0
    assert redis_client.zcard("unacked_index") == 0
    hub.close()


def test_pending_acks_are_flushed_when_the_channel_closes(
    connection: Connection, redis_client: Any
) -> None:
    publish(connection, 3)
    channel, got = consume(connection, prefetch=10)
    connection.drain_events(timeout=5)
    for message in got:
        message.ack()
    channel.close()
    assert redis_client.hlen("unacked") == 0
    assert redis_client.llen("t.batch") == 0  # acked: nothing restored


def test_unacked_messages_go_back_to_the_queue_on_close(
    connection: Connection, redis_client: Any
) -> None:
    publish(connection, 8)
    channel, got = consume(connection, prefetch=5)
    connection.drain_events(timeout=5)
    assert len(got) == 5
    got[0].ack()
    channel.close()
    assert redis_client.llen("t.batch") == 7  # 3 never delivered + 4 delivered, not acked
    assert redis_client.hlen("unacked") == 0
    _again, back = consume(connection, prefetch=10)
    connection.drain_events(timeout=5)
    assert sorted(m.payload["i"] for m in back) == [1, 2, 3, 4, 5, 6, 7]  # whole envelopes


def test_a_single_message_takes_kombus_own_path(
    connection: Connection, redis_client: Any
) -> None:
    publish(connection, 1)
    channel, got = consume(connection, prefetch=1)
    connection.drain_events(timeout=5)
    assert len(got) == 1
    assert redis_client.hlen("unacked") == 1
    got[0].ack()
    channel.close()
    assert redis_client.hlen("unacked") == 0


def test_fetch_batch_zero_is_one_message_per_poll(redis_client: Any, redis_url: str) -> None:
    conn = Connection(redis_url, transport=TRANSPORT, transport_options={"fetch_batch": 0})
    try:
        publish(conn, 4)
        _channel, got = consume(conn, prefetch=10)
        conn.drain_events(timeout=5)
        assert len(got) == 1
        assert redis_client.llen("t.batch") == 3
    finally:
        conn.release()
