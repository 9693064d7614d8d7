"""Set-based claim_many / complete_many keep the one-row semantics (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from agentcron.clock import FrozenClock
from agentcron.ledger import ClaimStatus, Ledger
from agentcron.ledger.records import ClaimRequest, NewWindow, RunState
from tests.unit.test_ledger_contract import START, hours, ledger, ledger_url, window

__all__ = ["ledger", "ledger_url"]  # fixtures


def requests(windows: list[NewWindow], first_token: int = 1, max_attempts: int = 3) -> list[ClaimRequest]:
    return [ClaimRequest(w, first_token + i, f"w{i}", max_attempts, running=True)
            for i, w in enumerate(windows)]


def test_a_batch_claims_fresh_and_scheduled_windows(ledger: Ledger) -> None:
    windows = hours(6)
    ledger.record_scheduled(windows[:3])
    claims = ledger.claim_many(requests(windows))
    assert [c.status for c in claims] == [ClaimStatus.CLAIMED] * 6
    assert all(c.record.state is RunState.RUNNING and c.record.attempt == 1 for c in claims)
    assert [c.previous is not None for c in claims] == [True] * 3 + [False] * 3


def test_the_same_window_twice_in_a_batch_has_one_winner(ledger: Ledger) -> None:
    w = window()
    claims = ledger.claim_many([ClaimRequest(w, 3, "a", 3), ClaimRequest(w, 5, "b", 3)])
    assert sorted(c.status.value for c in claims) == ["active", "claimed"]
    winner = next(c for c in claims if c.status is ClaimStatus.CLAIMED)
    assert winner.record.token == 5 and winner.record.worker_id == "b"


def test_done_stale_and_exhausted_windows_in_a_batch(ledger: Ledger, clock: FrozenClock) -> None:
    done, stale, poison, fresh = hours(4)
    assert ledger.claim(done, 1, "x", 3).status is ClaimStatus.CLAIMED
    assert ledger.complete(done.job, done.window_start, 1, RunState.SUCCEEDED)
    assert ledger.claim(stale, 10, "x", 3).status is ClaimStatus.CLAIMED
    for token in (20, 21):
        assert ledger.claim(poison, token, "x", 2).status is ClaimStatus.CLAIMED
    claims = ledger.claim_many([ClaimRequest(done, 30, "y", 3), ClaimRequest(stale, 4, "y", 3),
                                ClaimRequest(poison, 31, "y", 2), ClaimRequest(fresh, 32, "y", 3)])
    assert [c.status for c in claims] == [ClaimStatus.DONE, ClaimStatus.ACTIVE,
                                          ClaimStatus.EXHAUSTED, ClaimStatus.CLAIMED]
    assert claims[2].record.state is RunState.FAILED
    assert "worker lost 2 times" in (claims[2].record.error_message or "")


def test_a_forced_claim_in_a_batch_reruns_a_succeeded_window(ledger: Ledger) -> None:
    w, other = hours(2)
    ledger.claim(w, 1, "x", 3)
    ledger.complete(w.job, w.window_start, 1, RunState.SUCCEEDED)
    claims = ledger.claim_many([ClaimRequest(w, 2, "y", 3, force=True), ClaimRequest(other, 3, "y", 3)])
    assert [c.status for c in claims] == [ClaimStatus.CLAIMED, ClaimStatus.CLAIMED]
    assert claims[0].record.attempt == 1


def test_complete_many_is_fenced_per_row(ledger: Ledger, clock: FrozenClock) -> None:
    windows = hours(3)
    ledger.claim_many(requests(windows, first_token=10))
    good = ledger.complete_request(windows[0].job, windows[0].window_start, 10, RunState.SUCCEEDED,
                                   result={"n": 1}, duration=1.5)
    stale = ledger.complete_request(windows[1].job, windows[1].window_start, 99, RunState.SUCCEEDED,
                                    duration=1.0)
    failed = ledger.complete_request(windows[2].job, windows[2].window_start, 12, RunState.FAILED,
                                     error_type="Boom", error_message="x" * 5000, duration=0.5)
    assert ledger.complete_many([good, stale, failed]) == [True, False, True]
    rows = {r.window_key: r for r in ledger.list_runs()}
    first = rows[windows[0].window_key]
    assert first.state is RunState.SUCCEEDED and first.result == {"n": 1} and first.duration == 1.5
    assert first.finished_at is not None and first.finished_at.tzinfo is not None
    assert rows[windows[1].window_key].state is RunState.RUNNING
    third = rows[windows[2].window_key]
    assert third.state is RunState.FAILED and len(third.error_message or "") <= ledger.error_max_chars
    assert START + timedelta(hours=2) == third.window_start


def test_get_many_returns_the_existing_rows_by_key(ledger: Ledger) -> None:
    windows = hours(3)
    ledger.record_scheduled(windows[:2])
    keys = [w.window_key for w in windows]
    found = ledger.get_many([*keys, keys[0]])
    assert set(found) == set(keys[:2])
    assert all(found[k].state is RunState.SCHEDULED for k in keys[:2])
