"""Which queue entries can be handed to Celery, and why the others cannot (pure, no I/O).

A broker queue entry is kombu's JSON envelope: ``{"body", "content-type", "content-encoding",
"headers", "properties": {"delivery_tag", "delivery_info": {"exchange", "routing_key"},
"body_encoding"}}``. :func:`decode_entry` turns the raw bytes of one entry into that envelope,
or raises :class:`PoisonEntry` naming the reason; everything it lets through can be made into a
kombu message without raising (a message whose *body* does not decode is caught later, by the
consumer, from the same content type check Celery makes).
"""

from __future__ import annotations

import binascii
import hashlib
import json
from base64 import b64decode
from typing import Any

from kombu.utils.json import loads as kombu_loads

KINDS = ("undecodable", "too_large", "content_type", "unknown_task", "unsigned", "forged", "other")
"""Why an entry was dead-lettered (the metric's ``kind`` label); anything else counts as other."""
ACCEPTED_CONTENT_TYPES = frozenset({"application/json"})
"""Celery's ``accept_content=["json"]``: pickle, YAML and the rest are refused unread."""
PREVIEW_CHARS = 120


class PoisonEntry(ValueError):
    """A queue entry that cannot be run; ``kind`` is one of :data:`KINDS`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind if kind in KINDS else "other"
        self.detail = detail

    @property
    def reason(self) -> str:
        """``"kind: detail"``, what :func:`agentcron.deadletters.dead_letter` takes."""
        return str(self)


def kind_of(reason: str) -> str:
    """The kind at the start of a ``"kind: detail"`` reason (``other`` when it is not one)."""
    kind = reason.split(":", 1)[0].strip()
    return kind if kind in KINDS else "other"


def decode_entry(raw: bytes | str, *, max_bytes: int) -> dict[str, Any]:
    """The envelope of one raw queue entry; :class:`PoisonEntry` when it cannot be delivered."""
    size = len(raw)
    if size > max_bytes:
        raise PoisonEntry("too_large", f"{size} bytes, over the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        payload = json_loads(text)  # kombu's decoding, as kombu does (a faster path)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PoisonEntry("undecodable", f"not JSON ({exc})") from None
    check_envelope(payload)
    return payload  # type: ignore[no-any-return]


def json_loads(data: str | bytes | bytearray | memoryview) -> Any:
    """What kombu's JSON decoder returns for ``data``, sooner: text with no escape and no
    ``__type__`` (nothing kombu's object hook could turn into a date, a UUID, bytes...) goes
    to the standard decoder with no hook; any other text to kombu's own ``loads``. kombu's
    builds a decoder and calls the hook on every object, at every message (twice per message
    in a Celery worker: the strategy and the tracer each decode the body)."""
    if isinstance(data, str):
        text = data
    else:
        text = (data if isinstance(data, bytes) else bytes(data)).decode("utf-8")
    if "\\" in text or "__type__" in text:
        return kombu_loads(text)  # type: ignore[no-untyped-call]
    return json.loads(text)


def check_envelope(payload: Any) -> None:
    """Raise :class:`PoisonEntry` unless ``payload`` is a kombu envelope in an accepted type."""
    if not isinstance(payload, dict):
        raise PoisonEntry("undecodable", f"a JSON {type(payload).__name__}, not a message envelope")
    properties = payload.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        raise PoisonEntry("undecodable", "no properties.delivery_tag in the envelope")
    if not isinstance(properties["delivery_tag"], str | int):
        raise PoisonEntry("undecodable", "properties.delivery_tag is not a string")
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not all(k in info for k in ("exchange", "routing_key")):
        raise PoisonEntry("undecodable", "no properties.delivery_info exchange/routing_key")
    headers = payload.get("headers") or {}
    if not isinstance(headers, dict):
        raise PoisonEntry("undecodable", "headers is not an object")
    if not isinstance(headers.get("task", ""), str):
        raise PoisonEntry("undecodable", "headers.task is not a string")
    content_type = payload.get("content-type")
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise PoisonEntry("content_type", f"content type {_clip(repr(content_type))} refused "
                                          "(only application/json is accepted)")
    _check_body(payload.get("body"), properties.get("body_encoding"))


def _check_body(body: Any, encoding: Any) -> None:
    if body is None or body == "":
        return
    if not isinstance(body, str):
        raise PoisonEntry("undecodable", f"body is a JSON {type(body).__name__}, not text")
    if encoding == "base64":
        try:
            b64decode(body.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise PoisonEntry("undecodable", "body is not valid base64") from None
    elif encoding not in (None, ""):
        raise PoisonEntry("undecodable", f"unknown body encoding {_clip(repr(encoding))}")


def preview(raw: bytes | str, limit: int = PREVIEW_CHARS) -> str:
    """What a log line may show of an entry: the task name and id of an envelope, else the
    first ``limit`` characters (never a whole body, which may carry arguments)."""
    size, payload = len(raw), None
    if size <= 64 * 1024:
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            payload = None
    if isinstance(payload, dict) and isinstance(payload.get("headers"), dict):
        headers = payload["headers"]
        return (f"envelope task={_clip(repr(headers.get('task')))} "
                f"id={_clip(repr(headers.get('id')))} ({size} bytes)")
    head = raw[:limit]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    more = "…" if size > limit else ""
    return f"{text!r}{more} ({size} bytes)"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def fingerprint(queue: str, raw: bytes | str) -> str | None:
    """A broker message's identity, kept by redeliveries: the SHA-256 of its queue, delivery
    tag and body (kombu's restore marks the envelope ``redelivered`` and changes nothing else).
    None for an entry that is not such an envelope (it was never reserved, so never comes back)."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
        return None
    tag, body = payload["properties"].get("delivery_tag"), payload.get("body")
    if not isinstance(tag, str) or not isinstance(body, str):
        return None
    return hashlib.sha256("\0".join((queue, tag, body)).encode("utf-8", "surrogateescape")).hexdigest()
