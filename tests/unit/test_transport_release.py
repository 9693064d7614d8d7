"""What a delivered envelope keeps while its run is in flight (workers/transport.py)."""

from __future__ import annotations

from typing import Any

from workers.transport import _release_delivered


def test_a_delivered_envelope_lets_go_of_its_body_and_headers() -> None:
    headers: dict[str, Any] = {"id": "t1", "task": "agentcron.run_async", "argsrepr": "()"}
    properties = {"delivery_tag": "d1", "delivery_info": {"exchange": "", "routing_key": "q"}}
    payload = {"body": "W10=", "headers": headers, "properties": properties,
               "content-type": "application/json"}  # fmt: skip
    _release_delivered(payload)
    assert payload == {} and headers == {}  # the message's own envelope and headers, emptied
    assert properties["delivery_tag"] == "d1"  # kept (the message and request hold them)
