"""What every run ledger checks before it writes: a result is JSON and small enough, an error
text is clipped, a completion is a terminal state (one spelling for the SQL and in-memory
ledgers)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agentcron.ledger.records import CompleteRequest, RunState
from agentcron.reports.content import PendingReport

log = logging.getLogger("agentcron.ledger.store")


class ResultError(ValueError):
    """A run's result is not JSON-serialisable or larger than the configured limit."""


def check_result(result: Any, max_bytes: int) -> Any:
    """``result`` as JSON gives it back; ResultError when it is not JSON or too large."""
    if result is None:
        return None
    try:
        encoded = json.dumps(result, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ResultError(f"result not serialisable: {exc}") from exc
    size = len(encoded.encode())
    if size > max_bytes:
        raise ResultError(f"result too large: {size} bytes, limit {max_bytes} bytes")
    return json.loads(encoded)


def clip(text: str | None, max_chars: int) -> str | None:
    """``text`` cut to ``max_chars`` (with an ellipsis)."""
    if text is None or len(text) <= max_chars:
        return text
    return text[: max(max_chars - 1, 0)] + "…"


def completion(job: str, window_start: datetime, token: int, state: RunState, *, result: Any,
               error_type: str | None, error_message: str | None, duration: float | None,
               reports: Sequence[PendingReport], deliver: Sequence[str], result_max_bytes: int,
               error_max_chars: int) -> CompleteRequest:  # fmt: skip
    """A checked :class:`CompleteRequest` (ResultError, or ValueError for a state that does not
    end a run); only a success keeps its reports."""
    state = RunState(state)
    if not state.terminal:
        raise ValueError(f"complete needs a terminal state, not {state!r}")
    return CompleteRequest(job, window_start, token, state, check_result(result, result_max_bytes),
                           error_type[:200] if error_type else None,
                           clip(error_message, error_max_chars), duration,
                           tuple(reports) if state is RunState.SUCCEEDED else (),
                           tuple(deliver))  # fmt: skip


def stale_completion(request: CompleteRequest) -> None:
    """The warning of a completion that lost its token (fenced out)."""
    log.warning("stale completion of %s@%s with token %s dropped (fenced out)",
                request.job, request.window_start.isoformat(), request.token)  # fmt: skip
