"""Many claimants of one window at once (threads, then real processes): exactly one success.

Each claimant has its own, distinct fencing token. The highest token that claims holds the row, so
every other claimant must end ACTIVE, DONE, or fenced at completion, and none is lost.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentcron.ledger import ClaimStatus, Ledger
from agentcron.ledger.records import NewWindow, RunState
from tests.services import reset_postgres

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)
WINDOW = NewWindow("race", START, "race@2026-03-17T06:00:00Z", START)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        return
    postgres: str = request.getfixturevalue("postgres_url")
    reset_postgres(postgres)
    yield postgres


def claim_and_complete(ledger: Ledger, token: int) -> str:
    """One claimant's whole life; its outcome as a word."""
    claim = ledger.claim(WINDOW, token, f"worker-{token}", max_attempts=1000)
    if claim.status is not ClaimStatus.CLAIMED:
        return str(claim.status)
    ledger.start(WINDOW.job, WINDOW.window_start, token)
    won = ledger.complete(WINDOW.job, WINDOW.window_start, token, RunState.SUCCEEDED, result=token)
    return "succeeded" if won else "fenced"


def check_outcomes(ledger: Ledger, outcomes: dict[int, str], claimants: int) -> None:
    assert len(outcomes) == claimants, "a claimant was lost"
    counts = Counter(outcomes.values())
    assert counts["succeeded"] == 1, counts
    assert set(counts) <= {"succeeded", "fenced", "active", "done"}, counts
    row = ledger.get(WINDOW.job, WINDOW.window_start)
    assert row is not None and row.state is RunState.SUCCEEDED
    winner = next(token for token, outcome in outcomes.items() if outcome == "succeeded")
    assert (row.token, row.result) == (winner, winner)
    assert ledger.count_by_state() == {"succeeded": 1}


def test_fifty_threads_claim_one_window(url: str) -> None:
    ledger = Ledger(url, auto_migrate=True)
    ledger.record_scheduled([WINDOW])
    barrier = threading.Barrier(50)
    outcomes: dict[int, str] = {}
    errors: list[BaseException] = []

    def run(token: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[token] = claim_and_complete(ledger, token)
        except BaseException as exc:  # the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(token,)) for token in range(1, 51)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    check_outcomes(ledger, outcomes, 50)
    ledger.close()


def process_claimant(url: str, token: int, barrier: Any, results: Any) -> None:
    """Runs in a spawned process: its own engine, then the claimant's life."""
    ledger = Ledger(url, auto_migrate=False)
    try:
        barrier.wait(timeout=60)
        results.put((token, claim_and_complete(ledger, token)))
    except BaseException as exc:
        results.put((token, f"error: {exc!r}"))
    finally:
        ledger.close()


def run_processes(target: Any, args: list[tuple[Any, ...]], timeout: float = 120) -> list[Any]:
    """Start one spawned process per args tuple (a barrier and a queue appended); collect."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(args)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, barrier, results)) for a in args]
    for proc in procs:
        proc.start()
    collected = [results.get(timeout=timeout) for _ in procs]
    for proc in procs:
        proc.join(timeout=timeout)
        assert proc.exitcode == 0
    return collected


def test_eight_processes_claim_one_window(url: str) -> None:
    ledger = Ledger(url, auto_migrate=True)
    ledger.record_scheduled([WINDOW])
    results = run_processes(process_claimant, [(url, token) for token in range(1, 9)])
    outcomes = dict(results)
    assert not [o for o in outcomes.values() if o.startswith("error")], outcomes
    check_outcomes(ledger, outcomes, 8)
    ledger.close()


def process_upgrade(url: str, barrier: Any, results: Any) -> None:
    """Runs in a spawned process: migrate the database at the same moment as the others."""
    try:
        ledger = Ledger(url, auto_migrate=False)
        barrier.wait(timeout=60)
        ledger.upgrade()
        ledger.close()
        results.put("ok")
    except BaseException as exc:
        results.put(f"error: {exc!r}")


def test_concurrent_upgrades_are_safe(url: str) -> None:
    assert run_processes(process_upgrade, [(url,)] * 4) == ["ok"] * 4
    ledger = Ledger(url, auto_migrate=False)
    assert ledger.record_scheduled([WINDOW]) == [WINDOW.window_key]
    ledger.close()


def test_many_new_windows_are_recorded_and_claimed_in_one_batch(url: str) -> None:
    """Several windows at once (PostgreSQL: one INSERT over arrays): new rows 'scheduled', a
    window recorded twice is one row, and a batch of claims inserts what is missing first."""
    from datetime import timedelta

    from agentcron.ledger.records import ClaimRequest

    ledger = Ledger(url)
    ledger.upgrade()
    windows = [NewWindow("many", START + timedelta(minutes=i),
                         f"many@2026-03-17T06:{i:02d}:00Z", START + timedelta(minutes=i))
               for i in range(4)]  # fmt: skip
    assert sorted(ledger.record_scheduled([*windows[:2], windows[0]])) == sorted(
        w.window_key for w in windows[:2])
    assert ledger.record_scheduled(windows[:2]) == []
    rows = ledger.get_many([w.window_key for w in windows[:2]])
    assert {(r.state, r.attempt) for r in rows.values()} == {(RunState.SCHEDULED, 0)}
    claims = ledger.claim_many([ClaimRequest(w, 10 + i, "w", 3, running=True)
                                for i, w in enumerate(windows)])  # fmt: skip
    assert [c.status for c in claims] == [ClaimStatus.CLAIMED] * 4
    assert ledger.count_by_state("many") == {"running": 4}
    ledger.close()


def test_claims_commit_without_waiting_for_the_wal_completions_wait(
    url: str, driver_statements: list[tuple[str, bool]]
) -> None:
    """PostgreSQL: a claim's transaction relaxes synchronous_commit (see Ledger._relaxed_commit;
    the one-statement claim does it with set_config), a completion's never does."""
    from agentcron.ledger.records import ClaimRequest

    if not url.startswith("postgresql"):
        pytest.skip("synchronous_commit is PostgreSQL's")
    ledger = Ledger(url)
    ledger.upgrade()
    seen = driver_statements
    ledger.claim(WINDOW, 1, "w", 3, running=True)
    claimed = [statement for statement, _ in seen]
    seen.clear()
    assert ledger.complete(WINDOW.job, WINDOW.window_start, 1, RunState.SUCCEEDED)
    completed = [statement for statement, _ in seen]
    seen.clear()
    ledger.claim_many([ClaimRequest(WINDOW, 2, "w", 3, force=True)])  # the general path
    forced = [statement for statement, _ in seen]
    markers = ("SET LOCAL synchronous_commit = off", "set_config('synchronous_commit', 'off'")

    def relaxed(statements: list[str]) -> bool:
        return any(marker in statement for statement in statements for marker in markers)

    assert relaxed(claimed) and relaxed(forced)
    assert completed and not relaxed(completed)
    ledger.close()
