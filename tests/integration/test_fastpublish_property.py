"""Issue 13 item 2: for every job name and queue that validation accepts, beat's pipelined fast
path writes bytes that decode to exactly what Celery's own producer sends (real Redis)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcron.beat.fastpublish import RedisListPublisher, header_template, reply_to_of
from agentcron.emission.publisher import Outgoing
from agentcron.instants import MAX_INSTANT, MIN_INSTANT
from agentcron.messages import ASYNC_TASK, SYNC_TASK, TRIGGERS, RunMessage
from agentcron.settings import Settings
from agentcron.signing import signed_kwargs
from agentcron.windows import JOB_NAME_PATTERN, QUEUE_NAME_PATTERN, is_job_name, is_queue_name, window_key
from workers.app import celery_config

pytestmark = pytest.mark.integration
_UUIDS = ("id", "root_id")


def _names(pattern: str, valid: Any) -> st.SearchStrategy[str]:
    """Names the pattern generates, plus arbitrary text that validation happens to accept."""
    regex = re.compile(pattern, re.ASCII)
    return st.one_of(st.from_regex(regex, fullmatch=True), st.text(max_size=130).filter(valid))


messages = st.builds(
    lambda job, start, slot, trigger, attempt, force: RunMessage(
        job, window_key(job, start), start.replace(microsecond=0), slot.replace(microsecond=0),
        trigger, attempt, force),
    _names(JOB_NAME_PATTERN, is_job_name),
    st.datetimes(MIN_INSTANT.replace(tzinfo=None), MAX_INSTANT.replace(tzinfo=None), timezones=st.just(UTC)),
    st.datetimes(MIN_INSTANT.replace(tzinfo=None), MAX_INSTANT.replace(tzinfo=None), timezones=st.just(UTC)),
    st.sampled_from(TRIGGERS), st.integers(1, 10_000), st.booleans(),
)  # fmt: skip


@pytest.fixture(scope="module")
def producer(redis_url: str) -> Iterator[tuple[Celery, Any]]:
    import redis

    app = Celery("fastpath-property")
    app.conf.update(celery_config(Settings(broker_url=redis_url)))
    client = redis.Redis.from_url(redis_url)
    yield app, client
    client.close()


def _normalised(raw: bytes) -> dict[str, Any]:
    envelope = json.loads(raw)
    task_id = envelope["headers"]["id"]
    assert all(envelope["headers"][k] == task_id for k in _UUIDS)
    assert envelope["properties"]["correlation_id"] == task_id
    for key in _UUIDS:
        envelope["headers"][key] = "<id>"
    envelope["properties"]["correlation_id"] = envelope["properties"]["delivery_tag"] = "<id>"
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    return dict(envelope)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=messages, queue=_names(QUEUE_NAME_PATTERN, is_queue_name),
       task=st.sampled_from([SYNC_TASK, ASYNC_TASK]), key=st.sampled_from(["", "k3y-for-signing"]))
def test_fast_path_equals_celerys_producer(
    producer: tuple[Celery, Any], message: RunMessage, queue: str, task: str, key: str
) -> None:  # fmt: skip
    import workers.app  # noqa: F401  (its before_task_publish hook shapes kwargsrepr)

    app, client = producer
    name = f"property:{queue}"
    client.delete(name)
    kwargs = signed_kwargs(message, key) if key else message.to_kwargs()
    with app.producer_or_acquire() as celery_producer:
        app.send_task(task, kwargs=kwargs, queue=name, producer=celery_producer)
    fast = RedisListPublisher(client, header_template(app), reply_to=reply_to_of(app), signing_key=key)
    fast.publish([Outgoing(task, name, message)])
    fast_raw, celery_raw = client.lrange(name, 0, -1)  # LPUSH: the newest first
    client.delete(name)
    assert _normalised(fast_raw) == _normalised(celery_raw)
    assert RunMessage.from_kwargs(json.loads(base64.b64decode(json.loads(fast_raw)["body"]))[1]) == message


def test_a_trailing_newline_or_a_quote_is_no_name() -> None:
    for bad in ("job\n", "job\r\n", 'jo"b', "jo\\b", "job\x00", "jöb", "job\u0661", "\njob"):
        assert not is_job_name(bad) and not is_queue_name(bad), repr(bad)


def test_even_an_unvalidated_name_yields_json() -> None:
    """Defence in depth: the fast path JSON-quotes every string it writes."""
    slot = datetime(2026, 3, 17, 6, tzinfo=UTC)
    message = RunMessage('x"\n\\', 'x"\n\\@2026-03-17T06:00:00Z', slot, slot)
    publisher = RedisListPublisher(None, header_template(Celery("t")))
    envelope = json.loads(publisher.encode(Outgoing(SYNC_TASK, "q", message), "id-1"))
    assert json.loads(base64.b64decode(envelope["body"]))[1]["job"] == 'x"\n\\'
    assert envelope["headers"]["kwargsrepr"] == repr({"job": message.job, "window_key": message.window_key})
