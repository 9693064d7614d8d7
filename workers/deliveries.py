"""The last guard of both broker transports: an envelope that passed
:func:`agentcron.deadletters.decode_entry` but still breaks kombu's message or Celery's task
handling (a header of the wrong type, say) is dead-lettered instead of stopping the worker."""

from __future__ import annotations

from typing import Any

from kombu.utils.json import dumps

from agentcron.deadletters import dead_letter

DELIVERY_ERRORS = (KeyError, TypeError, ValueError, AttributeError)
"""What a malformed envelope raises while kombu and Celery take it in; anything else (a lost
connection, a broken pool) propagates as before."""


def drop_poison_delivery(channel: Any, payload: dict[str, Any], queue: str, exc: Exception) -> None:
    """Dead-letter ``payload`` and forget its delivery, so that it is neither restored nor
    redelivered (the Redis transport's QoS also removes its unacked record)."""
    raw = dumps(payload)  # type: ignore[no-untyped-call]
    dead_letter(f"undecodable: {type(exc).__name__}: {str(exc)[:200]}", queue, raw)
    properties = payload.get("properties")
    tag = properties.get("delivery_tag") if isinstance(properties, dict) else None
    if tag is None:
        return
    qos = channel.qos
    if tag in qos._delivered:
        qos.ack(tag)
    elif hasattr(qos, "_pending_acks"):  # recorded unacked in Redis before delivery
        qos._recorded.discard(tag)
        qos._pending_acks.append(tag)
