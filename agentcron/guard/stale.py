"""Ending a window whose run died while its row still says ``claimed`` / ``running``.

A redelivery that the overlap policy skips (or that comes too late, a misfire) records its
window ``skipped`` / ``missed`` with :meth:`Ledger.mark_terminal`, which leaves active rows
alone. If the run that made the row active died (a killed worker), nobody would ever end that
window: it would stay ``running`` for good. A live run always holds the lease it runs under and
renews it; so when that lease is not held under the row's token, the row's holder is gone (or
fenced anyway), and the delivery takes the row over with a fresh fencing token and records its
terminal state through the fenced completion.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agentcron.guard.modes import Mode
from agentcron.leases.base import LeaseStore
from agentcron.ledger.records import ACTIVE_STATES, ClaimStatus, NewWindow, RunRecord, RunState
from agentcron.ledger.store import Ledger

log = logging.getLogger("agentcron.guard")
Commit = Callable[..., Awaitable[Any]]


async def end_stale_run(
    commit: Commit, mode: Mode, ledger: Ledger, leases: LeaseStore, window: NewWindow,
    lease_name: str, state: RunState, reason: str, worker_id: str, max_attempts: int,
) -> bool:  # fmt: skip
    """Record ``state`` for a window left active by a dead holder; False if its holder lives."""
    record: RunRecord | None = await commit(mode, ledger.get, window.job, window.window_start)
    if record is None or record.state not in ACTIVE_STATES:
        return False
    holder = await mode.io(leases.holder, lease_name)
    if holder is not None and holder.token == record.token:
        return False  # the run is alive: it holds and renews its lease
    token = await mode.io(leases.next_token, lease_name)
    claim = await commit(mode, ledger.claim, window, token, worker_id, max_attempts)
    if claim.status is not ClaimStatus.CLAIMED:
        return False
    log.warning("%s: its run (token %s) lost its lease and left the row %s; recording %s",
                window.window_key, record.token, record.state.value, state.value)  # fmt: skip
    complete = functools.partial(ledger.complete, error_message=reason)
    done: bool = await commit(mode, complete, window.job, window.window_start, token, state)
    return done
