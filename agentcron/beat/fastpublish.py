"""Publishing straight onto Redis lists: Celery protocol 2 messages, LPUSHed in a pipeline.

Celery's ``send_task`` costs ~200 µs per message (routing, signals, events, one LPUSH each);
100,000 windows due at one minute boundary need far less. :class:`RedisListPublisher` builds
the same envelope kombu's Redis transport stores (the header template comes from Celery's own
``amqp.as_task_v2``, so a worker cannot tell the difference), and sends ``batch_size`` LPUSHes
per non-transactional pipeline round trip. It is used only for ``redis://`` brokers; any other
broker goes through :class:`~agentcron.beat.publisher.CeleryPublisher`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agentcron.beat.publisher import Outgoing
from agentcron.messages import RunMessage
from agentcron.schedules import format_instant

_BODY = (
    '[[], {"job": "%s", "window_key": "%s", "window_start": "%s", "slot": "%s", "trigger": "%s",'
    ' "attempt": %d, "force": %s}, {"callbacks": null, "errbacks": null, "chain": null,'
    ' "chord": null}]'
)
_ID, _KR, _BODY_MARK = "\x00id\x00", "\x00kr\x00", "\x00body\x00"


def header_template(app: Any) -> dict[str, Any]:
    """Celery's protocol 2 headers for a task message, as ``as_task_v2`` builds them."""
    message = app.amqp.as_task_v2("0", "agentcron.template", args=(), kwargs={})
    return dict(message.headers)


class RedisListPublisher:
    """LPUSH Celery messages onto Redis lists named by queue, pipelined in batches."""

    def __init__(self, client: Any, headers: dict[str, Any], *, batch_size: int = 5000,
                 key_prefix: str = "") -> None:  # fmt: skip
        self.client = client
        self.headers = headers
        self.batch_size = batch_size
        self.key_prefix = key_prefix
        self.published = 0
        self._instants: dict[datetime, str] = {}
        self._templates: dict[tuple[str, str], str] = {}

    def kwargs(self, message: RunMessage) -> dict[str, Any]:
        """What ``message.to_kwargs()`` returns (decoded from :meth:`body`)."""
        return dict(json.loads(self.body(message))[1])

    def _instant(self, when: datetime) -> str:
        cache = self._instants
        text = cache.get(when)
        if text is None:
            if len(cache) > 10_000:
                cache.clear()
            text = cache[when] = format_instant(when)
        return text

    def body(self, message: RunMessage) -> str:
        """The task body ``[args, kwargs, embed]`` as JSON. Job names and window keys are
        plain ``[A-Za-z0-9_.@:-]`` text (checked by the window key parser), so no escaping."""
        return _BODY % (message.job, message.window_key, self._instant(message.window_start),
                        self._instant(message.slot), message.trigger, message.attempt,
                        "true" if message.force else "false")  # fmt: skip

    def _template(self, task: str, queue: str) -> str:
        found = self._templates.get((task, queue))
        if found is not None:
            return found
        headers = dict(self.headers, task=task, id=_ID, root_id=_ID, argsrepr="()",
                       kwargsrepr=_KR)  # fmt: skip
        envelope = {
            "body": _BODY_MARK, "content-encoding": "utf-8", "content-type": "application/json",
            "headers": headers,
            "properties": {
                "correlation_id": _ID, "reply_to": "", "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                "body_encoding": "base64", "delivery_tag": _ID,
            },
        }  # fmt: skip
        text = json.dumps(envelope).replace("%", "%%")
        for mark, slot in ((_ID, "%(id)s"), (_KR, "%(kr)s"), (_BODY_MARK, "%(body)s")):
            text = text.replace(json.dumps(mark)[1:-1], slot)
        self._templates[(task, queue)] = text
        return text

    def encode(self, out: Outgoing, task_id: str) -> str:
        """The JSON envelope kombu's Redis transport stores for one message."""
        message = out.message
        body = base64.b64encode(self.body(message).encode()).decode()
        kr = f"{{'job': '{message.job}', 'window_key': '{message.window_key}'}}"
        return self._template(out.task, out.queue) % {"id": task_id, "kr": kr, "body": body}

    def publish(self, batch: Sequence[Outgoing]) -> None:
        """LPUSH every message; raise if Redis does not take them."""
        base = uuid.uuid4().hex
        stem = f"{base[:8]}-{base[8:12]}-{base[12:16]}-{base[16:20]}-"
        for start in range(0, len(batch), self.batch_size):
            pipe = self.client.pipeline(transaction=False)
            for index in range(start, min(start + self.batch_size, len(batch))):
                out = batch[index]
                pipe.lpush(self.key_prefix + out.queue, self.encode(out, f"{stem}{index:012x}"))
            pipe.execute()
            self.published += min(self.batch_size, len(batch) - start)
