"""The in-memory run ledger: the SQL ledger's twin for tests and single-process use.

Same contract as :class:`~agentcron.ledger.store.Ledger` (``tests/unit/test_ledger_contract.py``
runs the same test bodies over both): one row per window, claims fenced on tokens, completions
fenced on the claim's token, results and errors checked the same way. Time comes from the
injected clock; a lock makes each call atomic, as a transaction is. Nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agentcron.ledger.checks import clip, completion, stale_completion
from agentcron.ledger.memory_rows import MemoryRows
from agentcron.ledger.records import (
    ACTIVE_STATES,
    Claim,
    ClaimRequest,
    ClaimStatus,
    CompleteRequest,
    NewWindow,
    RunRecord,
    RunState,
)
from agentcron.reports.content import PendingReport

__all__ = ["MemoryLedger"]


class MemoryLedger(MemoryRows):
    """A :class:`~agentcron.ledger.base.RunLedger` in a dict (see the module docstring); rows
    and queries in :class:`~agentcron.ledger.memory_rows.MemoryRows`."""

    # -- windows ------------------------------------------------------------------------------

    def record_scheduled(self, windows: Sequence[NewWindow]) -> list[str]:
        """Record ``windows`` as 'scheduled' unless they have a row; return the new keys."""
        with self._lock:
            return [w.window_key for w in windows if self._insert(w, RunState.SCHEDULED)]

    def mark_terminal(self, window: NewWindow, state: RunState, reason: str) -> bool:
        """Record ``window`` as ``state`` with ``reason`` unless already terminal or active."""
        state = RunState(state)
        if not state.terminal:
            raise ValueError(f"mark_terminal needs a terminal state, not {state!r}")
        now = self._now()
        values = {"error_message": clip(reason, self.error_max_chars), "finished_at": now}
        with self._lock:
            if self._insert(window, state, **values) is not None:
                return True
            current = self._get(window.job, window.window_start)
            if current is None or current.state.terminal or current.state in ACTIVE_STATES:
                return False
            self._set(current, state=state, **values)
            return True

    # -- claims -------------------------------------------------------------------------------

    def claim(self, window: NewWindow, token: int, worker_id: str, max_attempts: int,
              force: bool = False, *, running: bool = False) -> Claim:  # fmt: skip
        """Claim ``window`` for the holder of ``token`` (see :class:`ClaimStatus`)."""
        return self.claim_many([ClaimRequest(window, token, worker_id, max_attempts, force,
                                             running)])[0]  # fmt: skip

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """:meth:`claim` for many windows as the SQL batch does: ``previous`` is the row before
        the batch; a window asked for twice has one winner (the newest token)."""
        with self._lock:
            before = {r.window.window_key: self._get(r.window.job, r.window.window_start)
                      for r in requests}  # fmt: skip
            claims = [self._claim(request) for request in requests]
            out: list[Claim] = []
            for request, claim in zip(requests, claims, strict=True):
                w = request.window
                final = self._get(w.job, w.window_start)
                previous = claim.previous if request.force else before[w.window_key]
                if claim.status is ClaimStatus.CLAIMED and final is not None \
                        and final.token != request.token:  # fmt: skip
                    claim = Claim(ClaimStatus.ACTIVE, final)
                out.append(Claim(claim.status, claim.record, previous))
            return out

    def _claim(self, request: ClaimRequest) -> Claim:
        window, token, force = request.window, request.token, request.force
        previous = self._get(window.job, window.window_start)
        if previous is None:
            self._insert(window, RunState.SCHEDULED)
        elif previous.state.terminal and not force:
            return Claim(ClaimStatus.DONE, previous, previous)
        row = self._get(window.job, window.window_start)
        assert row is not None
        holder_older = row.token is None or row.token < token
        open_row = not row.state.terminal and row.attempt < request.max_attempts
        if holder_older and (force or open_row):
            now = self._now()
            restart = force and row.state.terminal
            values: dict[str, Any] = {
                "state": RunState.RUNNING if request.running else RunState.CLAIMED,
                "token": token, "worker_id": request.worker_id,
                "attempt": 1 if restart else row.attempt + 1,
                "started_at": now if request.running else None, "finished_at": None,
            }  # fmt: skip
            if restart:  # history is never overwritten
                values |= {"duration": None, "error_type": None, "error_message": None,
                           "result": None}  # fmt: skip
                self.history.append((row, f"forced {window.trigger} run, token {token}"))
            return Claim(ClaimStatus.CLAIMED, self._set(row, **values), previous)
        found = self._classify(row, token, request.max_attempts)
        return Claim(found.status, found.record, previous)

    def _classify(self, record: RunRecord, token: int, max_attempts: int) -> Claim:
        if record.state.terminal:
            return Claim(ClaimStatus.DONE, record)
        newer_holder = record.token is not None and record.token >= token
        if newer_holder or record.attempt < max_attempts:
            return Claim(ClaimStatus.ACTIVE, record)
        failed = self._set(record, state=RunState.FAILED, error_type="WorkerLost",
                           error_message=f"worker lost {record.attempt} times",
                           finished_at=self._now())  # fmt: skip
        return Claim(ClaimStatus.EXHAUSTED, failed)

    # -- completions --------------------------------------------------------------------------

    def _fenced(self, job: str, window_start: datetime, token: int,
                *states: RunState) -> RunRecord | None:  # fmt: skip
        row = self._get(job, window_start)
        if row is None or row.token != token or row.state not in states:
            return None
        return row

    def start(self, job: str, window_start: datetime, token: int) -> bool:
        """claimed -> running for the holder of ``token``; False if fenced out."""
        with self._lock:
            row = self._fenced(job, window_start, token, RunState.CLAIMED)
            if row is not None:
                self._set(row, state=RunState.RUNNING, started_at=self._now())
            return row is not None

    def retry(self, job: str, window_start: datetime, token: int, error_type: str,
              error_message: str) -> int | None:  # fmt: skip
        """Count another in-process attempt, keep its error; the new attempt, None if fenced."""
        with self._lock:
            row = self._fenced(job, window_start, token, *ACTIVE_STATES)
            if row is None:
                return None
            return self._set(row, attempt=row.attempt + 1, error_type=error_type[:200],
                             error_message=clip(error_message, self.error_max_chars)).attempt  # fmt: skip

    def complete(self, job: str, window_start: datetime, token: int, state: RunState, *,
                 result: Any = None, error_type: str | None = None,
                 error_message: str | None = None, duration: float | None = None) -> bool:  # fmt: skip
        """Finish the run of the holder of ``token`` as ``state``; False (and a warning) if fenced."""
        return self.complete_many([self.complete_request(
            job, window_start, token, state, result=result, error_type=error_type,
            error_message=error_message, duration=duration)])[0]  # fmt: skip

    def complete_request(self, job: str, window_start: datetime, token: int, state: RunState, *,
                         result: Any = None, error_type: str | None = None,
                         error_message: str | None = None, duration: float | None = None,
                         reports: Sequence[PendingReport] = (),
                         deliver: Sequence[str] = ()) -> CompleteRequest:  # fmt: skip
        """A checked completion (raises ResultError now) to pass to :meth:`complete_many`."""
        return completion(job, window_start, token, state, result=result, error_type=error_type,
                          error_message=error_message, duration=duration, reports=reports,
                          deliver=deliver, result_max_bytes=self.result_max_bytes,
                          error_max_chars=self.error_max_chars)  # fmt: skip

    def complete_many(self, requests: Sequence[CompleteRequest]) -> list[bool]:
        """:meth:`complete` for many runs at once; each fenced on its own token."""
        with self._lock:
            results = [self._complete(request) for request in requests]
        for request, done in zip(requests, results, strict=True):
            if not done:
                stale_completion(request)
        return results

    def _complete(self, request: CompleteRequest) -> bool:
        row = self._fenced(request.job, request.window_start, request.token, *ACTIVE_STATES)
        if row is None:
            return False
        now = self._now()
        duration = request.duration
        if duration is None and row.started_at is not None:
            duration = (now - row.started_at).total_seconds()
        self._set(row, state=request.state, result=request.result, finished_at=now,
                  duration=duration, error_type=request.error_type,
                  error_message=request.error_message)  # fmt: skip
        if request.reports:
            self.outputs.append((request.job, row.window_key, request.reports, request.deliver))
        return True
