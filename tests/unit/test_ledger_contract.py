"""The ledger's contract: the same test bodies over SQLite (a temp file), PostgreSQL and the
in-memory twin (:class:`~agentcron.ledger.memory.MemoryLedger`).

The PostgreSQL variant is marked ``integration`` (it needs the server; skipped locally when it is
missing, a failure under CI=true); its schema is dropped and recreated before each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentcron.clock import FrozenClock
from agentcron.ledger import ClaimStatus, Ledger, ResultError
from agentcron.ledger.base import RunLedger
from agentcron.ledger.memory import MemoryLedger
from agentcron.ledger.records import NewWindow, RunState
from tests.services import reset_postgres

START = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration),
                        "memory"])  # fmt: skip
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'ledger.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    return url


@pytest.fixture
def ledger(ledger_url: str, clock: FrozenClock) -> Iterator[RunLedger]:
    store: RunLedger
    if ledger_url == "memory":
        store = MemoryLedger(clock, result_max_bytes=1000, error_max_chars=50)
    else:
        store = Ledger(ledger_url, clock, result_max_bytes=1000, error_max_chars=50)
    store.upgrade()
    yield store
    store.close()


def window(job: str = "report", start: datetime = START, trigger: str = "schedule") -> NewWindow:
    key = f"{job}@{start:%Y-%m-%dT%H:%M:%SZ}"
    return NewWindow(job=job, window_start=start, window_key=key, slot=start, trigger=trigger)


def hours(n: int) -> list[NewWindow]:
    return [window(start=START + timedelta(hours=i)) for i in range(n)]


def test_record_scheduled_is_idempotent_and_returns_only_new_keys(ledger: RunLedger) -> None:
    first = ledger.record_scheduled(hours(3))
    assert sorted(first) == sorted(w.window_key for w in hours(3))
    again = ledger.record_scheduled(hours(5))
    assert sorted(again) == sorted(w.window_key for w in hours(5)[3:])
    assert ledger.record_scheduled(hours(5)) == []
    assert ledger.record_scheduled([]) == []
    record = ledger.get("report", START)
    assert record is not None
    assert (record.state, record.attempt, record.token) == (RunState.SCHEDULED, 0, None)
    assert ledger.count_by_state() == {"scheduled": 5}


def test_claim_start_complete_happy_path(ledger: RunLedger, clock: FrozenClock) -> None:
    ledger.record_scheduled([window()])
    claim = ledger.claim(window(), token=7, worker_id="w1", max_attempts=3)
    assert claim.status is ClaimStatus.CLAIMED
    assert (claim.record.state, claim.record.attempt, claim.record.token) == ("claimed", 1, 7)
    assert claim.record.worker_id == "w1"
    assert ledger.start("report", START, 7)
    clock.advance(2.5)
    assert ledger.complete("report", START, 7, RunState.SUCCEEDED, result={"n": [1, 2]})
    record = ledger.get_by_key(window().window_key)
    assert record is not None
    assert record.state is RunState.SUCCEEDED
    assert record.result == {"n": [1, 2]}
    assert record.duration == pytest.approx(2.5)
    assert record.started_at == START
    assert record.finished_at == START + timedelta(seconds=2.5)


def test_claim_inserts_a_missing_row(ledger: RunLedger) -> None:
    claim = ledger.claim(window(trigger="manual"), token=1, worker_id="w", max_attempts=1)
    assert claim.status is ClaimStatus.CLAIMED
    assert claim.record.trigger == "manual"
    assert claim.record.attempt == 1


def test_stale_token_completion_returns_false_and_changes_nothing(ledger: RunLedger) -> None:
    ledger.claim(window(), token=1, worker_id="old", max_attempts=5)
    ledger.start("report", START, 1)
    assert ledger.claim(window(), token=2, worker_id="new", max_attempts=5).status == "claimed"
    before = ledger.get("report", START)
    assert not ledger.start("report", START, 1)
    assert ledger.retry("report", START, 1, "Boom", "stale") is None
    assert not ledger.complete("report", START, 1, RunState.SUCCEEDED, result=1)
    assert ledger.get("report", START) == before
    assert ledger.complete("report", START, 2, RunState.SUCCEEDED)


def test_newer_token_takes_over_an_active_row(ledger: RunLedger) -> None:
    ledger.claim(window(), token=10, worker_id="a", max_attempts=5)
    ledger.start("report", START, 10)
    claim = ledger.claim(window(), token=11, worker_id="b", max_attempts=5)
    assert claim.status is ClaimStatus.CLAIMED
    assert (claim.record.token, claim.record.worker_id, claim.record.attempt) == (11, "b", 2)
    assert claim.record.state is RunState.CLAIMED
    assert claim.record.started_at is None


@pytest.mark.parametrize("token", [5, 4])
def test_equal_or_older_token_gets_active(ledger: RunLedger, token: int) -> None:
    ledger.claim(window(), token=5, worker_id="a", max_attempts=5)
    claim = ledger.claim(window(), token=token, worker_id="b", max_attempts=5)
    assert claim.status is ClaimStatus.ACTIVE
    assert (claim.record.token, claim.record.worker_id, claim.record.attempt) == (5, "a", 1)


def test_done_after_success_and_force_reclaims(ledger: RunLedger) -> None:
    ledger.claim(window(), token=1, worker_id="a", max_attempts=3)
    ledger.complete("report", START, 1, RunState.SUCCEEDED, result="ok")
    done = ledger.claim(window(), token=2, worker_id="b", max_attempts=3)
    assert done.status is ClaimStatus.DONE
    assert done.record.state is RunState.SUCCEEDED
    forced = ledger.claim(window(), token=3, worker_id="b", max_attempts=3, force=True)
    assert forced.status is ClaimStatus.CLAIMED
    record = forced.record
    assert (record.attempt, record.state, record.result) == (1, "claimed", None)
    assert forced.record.finished_at is None


def test_exhausted_after_max_attempts_marks_worker_lost(ledger: RunLedger) -> None:
    for token in (1, 2, 3):
        assert ledger.claim(window(), token, "w", max_attempts=3).status is ClaimStatus.CLAIMED
    claim = ledger.claim(window(), 4, "w", max_attempts=3)
    assert claim.status is ClaimStatus.EXHAUSTED
    assert claim.record.state is RunState.FAILED
    assert claim.record.error_type == "WorkerLost"
    assert claim.record.error_message == "worker lost 3 times"
    assert not ledger.complete("report", START, 3, RunState.SUCCEEDED)
    assert ledger.claim(window(), 5, "w", max_attempts=3).status is ClaimStatus.DONE


def test_retry_increments_attempt_and_keeps_the_error(ledger: RunLedger) -> None:
    ledger.claim(window(), token=1, worker_id="w", max_attempts=3)
    ledger.start("report", START, 1)
    assert ledger.retry("report", START, 1, "TimeoutError", "x" * 80) == 2
    assert ledger.retry("report", START, 1, "TimeoutError", "again") == 3
    record = ledger.get("report", START)
    assert record is not None
    assert (record.state, record.attempt, record.error_type) == ("running", 3, "TimeoutError")
    assert record.error_message == "again"


def test_error_message_is_truncated(ledger: RunLedger) -> None:
    ledger.claim(window(), token=1, worker_id="w", max_attempts=3)
    ledger.complete("report", START, 1, RunState.FAILED, error_type="E", error_message="y" * 500)
    record = ledger.get("report", START)
    assert record is not None and record.error_message is not None
    assert len(record.error_message) == 50


def test_unserialisable_result_raises_result_error(ledger: RunLedger) -> None:
    ledger.claim(window(), token=1, worker_id="w", max_attempts=3)
    with pytest.raises(ResultError, match="result not serialisable"):
        ledger.complete("report", START, 1, RunState.SUCCEEDED, result={1, 2})
    with pytest.raises(ResultError, match="result not serialisable"):
        ledger.complete("report", START, 1, RunState.SUCCEEDED, result=float("nan"))
    record = ledger.get("report", START)
    assert record is not None and record.state is RunState.CLAIMED


def test_oversized_result_raises_result_error(ledger: RunLedger) -> None:
    ledger.claim(window(), token=1, worker_id="w", max_attempts=3)
    with pytest.raises(ResultError, match=r"result too large: 1002 bytes, limit 1000 bytes"):
        ledger.complete("report", START, 1, RunState.SUCCEEDED, result="z" * 1000)
    assert ledger.complete("report", START, 1, RunState.SUCCEEDED, result="z" * 998)


def test_mark_terminal_never_overwrites_success_or_active(ledger: RunLedger) -> None:
    ledger.claim(window(), token=1, worker_id="w", max_attempts=3)
    assert not ledger.mark_terminal(window(), RunState.MISSED, "late")
    ledger.complete("report", START, 1, RunState.SUCCEEDED)
    assert not ledger.mark_terminal(window(), RunState.MISSED, "late")
    record = ledger.get("report", START)
    assert record is not None and record.state is RunState.SUCCEEDED


def test_mark_terminal_writes_scheduled_and_absent_windows(ledger: RunLedger) -> None:
    later = window(start=START + timedelta(hours=1))
    ledger.record_scheduled([window()])
    assert ledger.mark_terminal(window(), RunState.MISSED, "beat was down")
    assert ledger.mark_terminal(later, RunState.SKIPPED, "overlap")
    assert not ledger.mark_terminal(later, RunState.MISSED, "again")
    record = ledger.get("report", START)
    assert record is not None
    assert (record.state, record.error_message) == (RunState.MISSED, "beat was down")
    assert record.finished_at == START
    assert ledger.claim(window(), 1, "w", max_attempts=3).status is ClaimStatus.DONE
    with pytest.raises(ValueError, match="terminal"):
        ledger.mark_terminal(window(), RunState.RUNNING, "no")


def test_pending_lists_old_scheduled_rows_oldest_first(
    ledger: Ledger, clock: FrozenClock
) -> None:
    ledger.record_scheduled([window(start=START + timedelta(hours=5))])
    clock.advance(60)
    ledger.record_scheduled([window(start=START + timedelta(hours=1))])
    ledger.claim(window(start=START + timedelta(hours=1)), 1, "w", 3)
    ledger.record_scheduled([window(start=START + timedelta(hours=2))])
    clock.advance(60)
    ledger.record_scheduled([window(start=START + timedelta(hours=3))])
    pending = ledger.pending(older_than=START + timedelta(seconds=60))
    assert [r.window_start.hour for r in pending] == [11, 8]
    assert len(ledger.pending(older_than=clock.now(), limit=1)) == 1
    ledger.record_scheduled([window(job="other", start=START)])
    assert [r.job for r in ledger.pending(clock.now(), jobs={"other"})] == ["other"]
    assert len(ledger.pending(clock.now(), jobs=["report"])) == 3


def test_list_runs_filters_and_count_by_state(ledger: RunLedger) -> None:
    ledger.record_scheduled([*hours(3), window(job="other", start=START - timedelta(hours=1))])
    ledger.claim(window(), 1, "w", 3)
    ledger.complete("report", START, 1, RunState.FAILED, error_message="bad")
    runs = ledger.list_runs()
    assert [r.window_key for r in runs][:3] == [w.window_key for w in reversed(hours(3))]
    assert [r.job for r in ledger.list_runs(job="other")] == ["other"]
    assert [r.state for r in ledger.list_runs(state="failed")] == [RunState.FAILED]
    assert len(ledger.list_runs(limit=2)) == 2
    assert ledger.count_by_state() == {"scheduled": 3, "failed": 1}
    assert ledger.count_by_state(job="report") == {"scheduled": 2, "failed": 1}
    with pytest.raises(ValueError):
        ledger.list_runs(state="bogus")


def test_timestamps_round_trip_as_aware_utc(ledger: RunLedger) -> None:
    from zoneinfo import ZoneInfo

    local = START.astimezone(ZoneInfo("America/New_York"))
    ledger.record_scheduled([window(start=local)])
    record = ledger.get("report", START)
    assert record is not None
    for value in (record.window_start, record.slot, record.scheduled_at):
        assert value is not None and value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
    assert record.window_start == START
    with pytest.raises(Exception, match="naive"):
        ledger.get("report", START.replace(tzinfo=None))


def test_reports_round_trip_newest_first(ledger: RunLedger) -> None:
    ledger.save_report("report", "report@x", "first", {"a": 1})
    ledger.save_report("other", "other@x", "second", ["b"])
    reports = ledger.list_reports()
    assert [r["title"] for r in reports] == ["second", "first"]
    assert reports[1]["body"] == {"a": 1}
    assert reports[1]["created_at"] == START
    assert [r["title"] for r in ledger.list_reports(job="report")] == ["first"]
