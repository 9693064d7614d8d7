"""The consumer's guard for a lost Redis connection (bug C), without a broker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kombu.common import ignore_errors
from kombu.transport.redis import Channel, Transport

from workers.consumer import Consumer, LostChannelError, fence_channel, fence_lost_connection


def detached_channel() -> Any:
    """A kombu Redis channel whose transport was detached, as ``Connection.collect()`` leaves it."""
    channel = Channel.__new__(Channel)  # no broker: skip __init__, which pings Redis
    channel.connection = SimpleNamespace(client=None, default_port=6379)
    return channel


def test_a_detached_channel_fails_with_attribute_error_unless_fenced() -> None:
    channel = detached_channel()
    with pytest.raises(AttributeError, match="hostname"):
        channel._connparams()  # what kills the worker: not a connection error
    assert fence_channel(channel)
    with pytest.raises(LostChannelError):
        channel._connparams()


def test_the_fenced_error_is_one_celery_and_kombu_ignore() -> None:
    channel = detached_channel()
    fence_channel(channel)
    connection = SimpleNamespace(connection_errors=Transport.connection_errors,
                                 channel_errors=Transport.channel_errors)
    ignore_errors(connection, channel._connparams)  # type: ignore[no-untyped-call]
    assert isinstance(LostChannelError(), Transport.connection_errors)


def test_a_live_channel_still_builds_its_parameters() -> None:
    channel: Any = Channel.__new__(Channel)
    calls: list[bool] = []

    def connparams(asynchronous: bool = False) -> dict[str, int]:
        calls.append(asynchronous)
        return {"db": 0}

    channel._connparams = connparams
    channel.connection = SimpleNamespace(client=object())
    assert fence_channel(channel)
    assert channel._connparams(asynchronous=True) == {"db": 0}
    assert calls == [True]
    assert not fence_channel(channel)  # fenced once only


def test_every_channel_of_the_lost_connection_is_fenced() -> None:
    first, second, default = detached_channel(), detached_channel(), detached_channel()
    connection = SimpleNamespace(_transport=SimpleNamespace(channels=[first, second]),
                                 _default_channel=default)
    assert fence_lost_connection(connection) == 3
    assert fence_lost_connection(SimpleNamespace(_transport=None, _default_channel=object())) == 0


def test_the_consumer_fences_before_celery_tears_the_connection_down(
        monkeypatch: pytest.MonkeyPatch) -> None:
    channel = detached_channel()
    seen: list[str] = []

    def celery_teardown(self: Any, exc: Exception) -> None:
        try:
            channel._connparams()
        except LostChannelError:
            seen.append("connection error")

    monkeypatch.setattr("celery.worker.consumer.consumer.Consumer."
                        "on_connection_error_after_connected", celery_teardown)
    consumer = Consumer.__new__(Consumer)
    consumer.connection = SimpleNamespace(_transport=SimpleNamespace(channels=[channel]),
                                          _default_channel=None)
    consumer.on_connection_error_after_connected(ConnectionError("lost"))
    assert seen == ["connection error"]


def test_the_app_uses_this_consumer() -> None:
    from workers.app import app

    assert app.conf.worker_consumer == "workers.consumer:Consumer"
