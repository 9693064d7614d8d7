"""Queue entries a worker cannot run, for the dead-letter tests (no tests here).

:func:`envelope` builds kombu's JSON envelope of a Celery task message by hand, so that a test can
push it (or a spoiled copy) straight onto a queue: an LPUSH on Redis, a row on the SQLite broker.
"""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from typing import Any

from agentcron.deadletters.requeue import push_raw

PICKLE = "application/x-python-serialize"
YAML = "application/x-yaml"


def envelope(task: str, kwargs: dict[str, Any], queue: str, *,
             content_type: str = "application/json", body: bytes | None = None) -> bytes:  # fmt: skip
    """A Celery protocol 2 message for ``task`` as kombu's virtual transports store it."""
    if body is None:
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        body = json.dumps([[], kwargs, embed]).encode()
    task_id = str(uuid.uuid4())
    headers: dict[str, Any] = {"lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
               "expires": None, "group": None, "group_index": None, "retries": 0,
               "timelimit": [None, None], "root_id": task_id, "parent_id": None,
               "argsrepr": "()", "kwargsrepr": "{}", "origin": "tests", "ignore_result": True,
               "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}}  # fmt: skip
    properties = {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                  "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                  "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}  # fmt: skip
    return json.dumps({"body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
                       "content-type": content_type, "headers": headers,
                       "properties": properties}).encode()  # fmt: skip


def redelivered(raw: bytes) -> bytes:
    """``raw`` as kombu's Redis restore pushes it back (flagged, re-serialised)."""
    payload = json.loads(raw)
    payload["headers"]["redelivered"] = True
    payload["properties"]["delivery_info"]["redelivered"] = True
    return json.dumps(payload, separators=(",", ":")).encode()


def poison_entries(queue: str, max_bytes: int) -> dict[str, bytes]:
    """One entry of every kind a worker must dead-letter: ``{kind label: raw entry}``."""
    return {
        "undecodable": b"this is not JSON {",
        "undecodable-array": b"[1, 2, 3]",
        "too_large": envelope("agentcron.run_sync", {"pad": "x" * max_bytes}, queue),
        "content_type-pickle": envelope("agentcron.run_sync", {}, queue, content_type=PICKLE,
                                        body=pickle.dumps({"job": "x"})),
        "content_type-yaml": envelope("agentcron.run_sync", {}, queue, content_type=YAML,
                                      body=b"job: x\n"),
        "unknown_task": envelope("no.such.task", {}, queue),
        # passes the transport's checks, then breaks Celery's request (an unhashable task id)
        "undecodable-list-id": envelope("agentcron.run_sync", {}, queue).replace(
            b'"id": "', b'"id": ["', 1).replace(b'", "shadow"', b'"], "shadow"', 1),
    }


def kind_of_label(label: str) -> str:
    """The dead-letter kind a :func:`poison_entries` label must end up with."""
    return label.split("-", 1)[0]


def push(broker_url: str, queue: str, raw: bytes) -> None:
    """Put ``raw`` on ``queue`` of the broker as a producer would (LPUSH / a message row)."""
    push_raw(broker_url, queue, raw)
