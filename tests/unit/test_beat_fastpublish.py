"""The pipelined publisher writes exactly the envelope kombu's Redis transport would."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery

from agentcron.beat.fastpublish import RedisListPublisher, header_template
from agentcron.emission.publisher import Outgoing
from agentcron.messages import SYNC_TASK, RunMessage

SLOT = datetime(2026, 3, 17, 6, 1, tzinfo=UTC)


class Pipe:
    def __init__(self, sink: list[tuple[str, str]]) -> None:
        self.sink = sink
        self.pending: list[tuple[str, str]] = []
        self.executed = 0

    def lpush(self, key: str, *values: str) -> None:
        self.pending.extend((key, value) for value in values)  # LPUSH k a b == LPUSH k a; k b

    def execute(self) -> None:
        self.sink.extend(self.pending)
        self.pending = []
        self.executed += 1


class Client:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, str]] = []
        self.round_trips = 0

    def pipeline(self, transaction: bool = True) -> Pipe:
        assert transaction is False
        self.round_trips += 1
        return Pipe(self.pushed)


def message(i: int, **kw: Any) -> RunMessage:
    return RunMessage(f"j{i}", f"j{i}@2026-03-17T06:01:00Z", SLOT, SLOT, **kw)


def test_envelope_matches_celery_protocol_2_and_kwargs() -> None:
    app = Celery("t", broker="redis://127.0.0.1:1/0")
    client = Client()
    publisher = RedisListPublisher(client, header_template(app), batch_size=2, key_prefix="p:")
    batch = [Outgoing(SYNC_TASK, "agentcron.sync", message(i)) for i in range(5)]
    batch.append(Outgoing(SYNC_TASK, "agentcron.sync", message(9, trigger="manual", force=True)))
    publisher.publish(batch)
    assert len(client.pushed) == 6
    key, raw = client.pushed[0]
    assert key == "p:agentcron.sync"
    envelope = json.loads(raw)
    expected = app.amqp.as_task_v2("x", SYNC_TASK, args=(), kwargs={})
    assert set(envelope["headers"]) == set(expected.headers)
    assert envelope["headers"]["task"] == SYNC_TASK
    assert envelope["headers"]["id"] == envelope["properties"]["correlation_id"]
    assert envelope["properties"]["delivery_info"]["routing_key"] == "agentcron.sync"
    args, kwargs, embed = json.loads(base64.b64decode(envelope["body"]))
    assert args == [] and kwargs == message(0).to_kwargs()
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    last = json.loads(base64.b64decode(json.loads(client.pushed[-1][1])["body"]))[1]
    assert last == message(9, trigger="manual", force=True).to_kwargs()
    ids = {json.loads(raw)["headers"]["id"] for _, raw in client.pushed}
    assert len(ids) == 6
    assert "config" not in raw and envelope["headers"]["argsrepr"] == "()"


def test_publish_windows_equals_publish_of_first_attempts() -> None:
    app = Celery("t", broker="redis://127.0.0.1:1/0")
    fast, slow = Client(), Client()
    from agentcron.ledger.records import NewWindow

    windows = [NewWindow(f"j{i}", SLOT, f"j{i}@2026-03-17T06:01:00Z", SLOT) for i in range(1200)]
    RedisListPublisher(fast, header_template(app)).publish_windows(
        [(SYNC_TASK, "agentcron.sync", w) for w in windows])
    RedisListPublisher(slow, header_template(app)).publish(
        [Outgoing(SYNC_TASK, "agentcron.sync", message(i)) for i in range(1200)])

    def bodies(client: Client) -> list[str]:
        return [json.loads(raw)["body"] for _, raw in client.pushed]

    assert bodies(fast) == bodies(slow)


def test_a_publish_signal_listener_routes_the_beat_through_celerys_producer(
    tmp_path: Path,
) -> None:
    """Receivers of before/after_task_publish (a tracer adding headers, say) only run when the
    message goes through Celery's producer; ours (it hides arguments) is done by the fast path."""
    from celery import signals

    from agentcron.beat.factory import open_publisher, publish_listeners
    from agentcron.emission.publisher import CeleryPublisher
    from agentcron.settings import Settings
    from workers.app import app

    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/15")
    assert publish_listeners() == []
    assert isinstance(open_publisher(app, settings), RedisListPublisher)

    def trace(**_: Any) -> None:
        return None

    signals.after_task_publish.connect(trace)
    try:
        assert publish_listeners() == [f"{__name__}.{trace.__qualname__}"]
        assert isinstance(open_publisher(app, settings), CeleryPublisher)
    finally:
        signals.after_task_publish.disconnect(trace)
    assert isinstance(open_publisher(app, settings), RedisListPublisher)
