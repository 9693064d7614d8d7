"""Publishing straight onto Redis lists: Celery protocol 2 messages, LPUSHed in a pipeline.

Celery's ``send_task`` costs ~200 µs per message (routing, signals, events, one LPUSH each);
100,000 windows due at one minute boundary need far less. :class:`RedisListPublisher` builds
the same envelope kombu's Redis transport stores (the header template comes from Celery's own
``amqp.as_task_v2``, so a worker cannot tell the difference), and sends ``batch_size`` LPUSHes
per non-transactional pipeline round trip. It is used only for ``redis://`` brokers; any other
broker goes through :class:`~agentcron.emission.publisher.CeleryPublisher`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from agentcron.emission.publisher import Outgoing
from agentcron.instants import format_instant
from agentcron.ledger.records import NewWindow
from agentcron.messages import RunMessage
from agentcron.signing import SIGNATURE_FIELD, signature

_BODY = (
    '[[], {"job": %s, "window_key": %s, "window_start": "%s", "slot": "%s", "trigger": %s,'
    ' "attempt": %d, "force": %s%s}, {"callbacks": null, "errbacks": null, "chain": null,'
    ' "chord": null}]'
)
_VALUES_PER_COMMAND = 500
_ID, _KR, _BODY_MARK = "\x00id\x00", "\x00kr\x00", "\x00body\x00"


def header_template(app: Any) -> dict[str, Any]:
    """Celery's protocol 2 headers for a task message, as ``send_task`` has ``as_task_v2``
    build them (``ignore_result`` unset: the task's own setting applies)."""
    message = app.amqp.as_task_v2("0", "agentcron.template", args=(), kwargs={},
                                  ignore_result=None)  # fmt: skip
    return dict(message.headers)


def reply_to_of(app: Any) -> str:
    """What Celery's producer puts in ``reply_to``: the app's thread oid."""
    return str(getattr(app, "thread_oid", "") or "")


class RedisListPublisher:
    """LPUSH Celery messages onto Redis lists named by queue, pipelined in batches."""

    def __init__(self, client: Any, headers: dict[str, Any], *, batch_size: int = 5000,
                 key_prefix: str = "", reply_to: str = "", signing_key: str = "") -> None:  # fmt: skip
        self.client = client
        self.signing_key = signing_key  # AGENTCRON_SIGNING_KEY: sign every message
        self.headers = headers
        self.reply_to = reply_to
        self.batch_size = batch_size
        self.key_prefix = key_prefix
        self.published = 0
        self._instants: dict[datetime, str] = {}
        self._templates: dict[tuple[str, str], str] = {}

    def kwargs(self, message: RunMessage) -> dict[str, Any]:
        """What ``signed_kwargs(message, key)`` returns (decoded from :meth:`body`)."""
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
        """The task body ``[args, kwargs, embed]`` as JSON."""
        return self._body(message.job, message.window_key, message.window_start, message.slot,
                          message.trigger, message.attempt, message.force)  # fmt: skip

    def _body(self, job: str, key: str, start: datetime, slot: datetime, trigger: str,
              attempt: int, force: bool) -> str:  # fmt: skip
        # Validated names never need escaping, but every string is JSON-quoted all the same
        # (C-speed): no name can ever make this write something that is not JSON.
        q = encode_basestring_ascii
        signed = ""
        if self.signing_key:
            message = RunMessage(job, key, start, slot, trigger, attempt, force)
            signed = f', "{SIGNATURE_FIELD}": "{signature(message, self.signing_key)}"'
        return _BODY % (q(job), q(key), self._instant(start), self._instant(slot), q(trigger),
                        attempt, "true" if force else "false", signed)  # fmt: skip

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
                "correlation_id": _ID, "reply_to": self.reply_to, "delivery_mode": 2,
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
        m = out.message
        body = self._body(m.job, m.window_key, m.window_start, m.slot, m.trigger, m.attempt,
                          m.force)  # fmt: skip
        return self._envelope(out.task, out.queue, m.job, m.window_key, body, task_id)

    def _envelope(self, task: str, queue: str, job: str, key: str, body: str,
                  task_id: str) -> str:  # fmt: skip
        encoded = base64.b64encode(body.encode()).decode()
        # workers.app's before_task_publish hook writes this repr; JSON-quoted like the rest
        kr = encode_basestring_ascii(repr({"job": job, "window_key": key}))[1:-1]
        return self._template(task, queue) % {"id": task_id, "kr": kr, "body": encoded}

    def publish(self, batch: Sequence[Outgoing]) -> None:
        """LPUSH every message; raise if Redis does not take them."""
        stem = _id_stem()
        self._push(((o.queue, self.encode(o, f"{stem}{i:012x}")) for i, o in enumerate(batch)))

    def publish_windows(self, batch: Sequence[tuple[str, str, NewWindow]]) -> None:
        """Publish first attempts of ``(task, queue, window)`` without building RunMessages."""
        stem = _id_stem()
        items = (
            (queue, self._envelope(task, queue, w.job, w.window_key,
                                   self._body(w.job, w.window_key, w.window_start, w.slot,
                                              w.trigger, 1, False), f"{stem}{i:012x}"))
            for i, (task, queue, w) in enumerate(batch)
        )  # fmt: skip
        self._push(items)

    def _push(self, items: Iterable[tuple[str, str]]) -> None:
        """Multi-value LPUSHes (same order as one LPUSH each), ``batch_size`` per round trip."""
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        pending: dict[str, list[str]] = {}
        for queue, payload in items:
            values = pending.setdefault(queue, [])
            values.append(payload)
            if len(values) >= _VALUES_PER_COMMAND:
                pipe.lpush(self.key_prefix + queue, *values)
                queued += len(values)
                pending[queue] = []
                if queued >= self.batch_size:
                    pipe.execute()
                    self.published += queued
                    queued = 0
        for queue, values in pending.items():
            if values:
                pipe.lpush(self.key_prefix + queue, *values)
                queued += len(values)
        if queued:
            pipe.execute()
            self.published += queued


def _id_stem() -> str:
    base = uuid.uuid4().hex
    return f"{base[:8]}-{base[8:12]}-{base[12:16]}-{base[16:20]}-"
