"""Optional HMAC signing of run messages (``AGENTCRON_SIGNING_KEY``).

With a key set, everything agentcron publishes (beat through Celery's producer and through the
pipelined Redis path, ``trigger``, ``backfill``, the watchdog's re-sends) carries
``signature``: HMAC-SHA256, hex, over the message's canonical form, and workers refuse a
message that is unsigned or whose signature does not match. The canonical form is the run
message's fields as :meth:`RunMessage.to_kwargs` gives them, as JSON with sorted keys and no
spaces, so a signer and a verifier agree whatever the transport did to the body. The key is
never logged, put in a message, or shown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from agentcron.messages import RunMessage

SIGNATURE_FIELD = "signature"


def canonical(message: RunMessage) -> bytes:
    """The bytes that are signed: the message's fields, sorted, compact JSON."""
    return json.dumps(message.to_kwargs(), sort_keys=True, separators=(",", ":")).encode()


def signature(message: RunMessage, key: str) -> str:
    """HMAC-SHA256 (hex) of ``message`` under ``key``."""
    return hmac.new(key.encode(), canonical(message), hashlib.sha256).hexdigest()


def signed_kwargs(message: RunMessage, key: str) -> dict[str, Any]:
    """The task kwargs of ``message``, with its signature when a key is set."""
    kwargs = message.to_kwargs()
    if key:
        kwargs[SIGNATURE_FIELD] = signature(message, key)
    return kwargs


def signature_problem(kwargs: Mapping[str, Any], message: RunMessage, key: str) -> str | None:
    """Why the delivery ``kwargs`` (parsed as ``message``) must be refused, or None if its
    signature is good (or no key is set)."""
    if not key:
        return None
    given = kwargs.get(SIGNATURE_FIELD)
    if not isinstance(given, str) or not given:
        return "unsigned message (AGENTCRON_SIGNING_KEY is set)"
    if not hmac.compare_digest(given, signature(message, key)):
        return "bad signature (forged or tampered message)"
    return None
