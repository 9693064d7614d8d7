"""PostgreSQL: one run's claim and completion are one statement each (agentcron.ledger.pg_single).

The rules themselves are the ledger contract's (tests/unit/test_ledger_contract.py runs them on
PostgreSQL through this path); here: that the path is taken, that it writes nothing when it does
not win, and that its claim relaxes only its own commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from agentcron.clock import FrozenClock
from agentcron.ledger import ClaimStatus, Ledger, pg_single
from agentcron.ledger.records import ClaimRequest, NewWindow, RunState
from tests.services import reset_postgres

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)
WINDOW = NewWindow("single", START, "single@2026-03-17T06:00:00Z", START)


@pytest.fixture
def ledger(postgres_url: str, clock: FrozenClock) -> Iterator[Ledger]:
    reset_postgres(postgres_url)
    store = Ledger(postgres_url, clock)
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
def statements(ledger: Ledger) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *rest: object) -> None:
        seen.append(statement)

    sa.event.listen(ledger.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(ledger.engine, "before_cursor_execute", record)


def row(ledger: Ledger) -> tuple[str, int, int | None, str | None]:
    record = ledger.get(WINDOW.job, WINDOW.window_start)
    assert record is not None
    return str(record.state), record.attempt, record.token, record.worker_id


def test_a_won_claim_and_its_completion_are_one_statement_each(
    ledger: Ledger, statements: list[str], clock: FrozenClock
) -> None:
    ledger.record_scheduled([WINDOW])
    statements.clear()
    claim = ledger.claim(WINDOW, 7, "w1", 3, running=True)
    assert len(statements) == 1, statements
    assert claim.status is ClaimStatus.CLAIMED
    assert (claim.record.state, claim.record.attempt, claim.record.token) == (RunState.RUNNING, 1, 7)
    assert claim.record.started_at == clock.now() and claim.record.started_at.tzinfo is UTC
    assert claim.previous is not None and claim.previous.state is RunState.SCHEDULED
    statements.clear()
    assert ledger.complete(WINDOW.job, WINDOW.window_start, 7, RunState.SUCCEEDED,
                           result={"n": 1}, duration=0.5)  # fmt: skip
    assert len(statements) == 1, statements
    done = ledger.get(WINDOW.job, WINDOW.window_start)
    assert done is not None
    assert (done.state, done.result, done.duration) == (RunState.SUCCEEDED, {"n": 1}, 0.5)


def test_a_missing_window_is_inserted_already_claimed(ledger: Ledger, statements: list[str]) -> None:
    claim = ledger.claim(WINDOW, 3, "w1", 2)
    assert len(statements) == 1
    assert claim.status is ClaimStatus.CLAIMED and claim.previous is None
    assert row(ledger) == ("claimed", 1, 3, "w1")


def test_a_lost_claim_writes_nothing_and_takes_the_general_path(ledger: Ledger) -> None:
    """Held by a newer token, done, or out of attempts: the statement returns no winner."""
    ledger.claim(WINDOW, 9, "holder", 5, running=True)
    with ledger.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        request = ClaimRequest(WINDOW, 4, "late", 5, running=True)
        assert pg_single.claim(conn, request, START + timedelta(minutes=1)) is None
    assert row(ledger) == ("running", 1, 9, "holder")
    assert ledger.claim(WINDOW, 4, "late", 5).status is ClaimStatus.ACTIVE
    assert ledger.complete(WINDOW.job, WINDOW.window_start, 9, RunState.SUCCEEDED, duration=1.0)
    assert ledger.claim(WINDOW, 10, "again", 5).status is ClaimStatus.DONE
    assert row(ledger) == ("succeeded", 1, 9, "holder")


def test_a_stale_completion_is_refused(ledger: Ledger) -> None:
    ledger.claim(WINDOW, 5, "old", 5, running=True)
    ledger.claim(WINDOW, 6, "new", 5, running=True)
    assert not ledger.complete(WINDOW.job, WINDOW.window_start, 5, RunState.FAILED, duration=1.0)
    assert row(ledger) == ("running", 2, 6, "new")


def test_the_claim_relaxes_its_own_commit_only(ledger: Ledger) -> None:
    """set_config(..., true) inside the statement: off for the claim's transaction, and the
    next transaction on the same connection commits synchronously again."""
    request = ClaimRequest(WINDOW, 1, "w", 3, running=True)
    with ledger.engine.connect() as conn:
        with conn.begin():
            assert pg_single.claim(conn, request, START) is not None
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        with conn.begin():
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
