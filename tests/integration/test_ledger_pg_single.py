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
def statements(driver_statements: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    return driver_statements


def row(ledger: Ledger) -> tuple[str, int, int | None, str | None]:
    record = ledger.get(WINDOW.job, WINDOW.window_start)
    assert record is not None
    return str(record.state), record.attempt, record.token, record.worker_id


def test_a_won_claim_and_its_completion_are_one_statement_each(
    ledger: Ledger, statements: list[tuple[str, bool]], clock: FrozenClock
) -> None:
    ledger.record_scheduled([WINDOW])
    statements.clear()
    claim = ledger.claim(WINDOW, 7, "w1", 3, running=True)
    assert [autocommit for _, autocommit in statements] == [True], statements
    assert claim.status is ClaimStatus.CLAIMED
    assert (claim.record.state, claim.record.attempt, claim.record.token) == (RunState.RUNNING, 1, 7)
    assert claim.record.started_at == clock.now() and claim.record.started_at.tzinfo is UTC
    assert claim.previous is not None and claim.previous.state is RunState.SCHEDULED
    statements.clear()
    assert ledger.complete(WINDOW.job, WINDOW.window_start, 7, RunState.SUCCEEDED,
                           result={"n": 1}, duration=0.5)  # fmt: skip
    assert [autocommit for _, autocommit in statements] == [True], statements
    done = ledger.get(WINDOW.job, WINDOW.window_start)
    assert done is not None
    assert (done.state, done.result, done.duration) == (RunState.SUCCEEDED, {"n": 1}, 0.5)


def test_a_missing_window_is_inserted_already_claimed(
    ledger: Ledger, statements: list[tuple[str, bool]]
) -> None:
    claim = ledger.claim(WINDOW, 3, "w1", 2)
    assert len(statements) == 1
    assert claim.status is ClaimStatus.CLAIMED and claim.previous is None
    assert row(ledger) == ("claimed", 1, 3, "w1")


def test_a_lost_claim_writes_nothing_and_takes_the_general_path(ledger: Ledger) -> None:
    """Held by a newer token, done, or out of attempts: the statement returns no winner."""
    ledger.claim(WINDOW, 9, "holder", 5, running=True)
    request = ClaimRequest(WINDOW, 4, "late", 5, running=True)
    assert pg_single.claim(ledger.engine, [request], START + timedelta(minutes=1)) == [None]
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
    params = {"job": WINDOW.job, "window_start": START, "window_key": WINDOW.window_key,
              "slot": START, "trigger": "schedule", "state": "running", "token": 1,
              "worker": "w", "started": START, "now": START, "max_attempts": 3}  # fmt: skip
    with ledger.engine.connect() as conn:
        with conn.begin():
            assert len(conn.exec_driver_sql(pg_single.CLAIM_ONE_SQL, params).all()) == 1
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        with conn.begin():
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"


def test_connections_go_back_to_the_pool_as_they_came(ledger: Ledger) -> None:
    """Each statement is its own transaction (autocommit), and the pooled connection is handed
    back with autocommit off, so the general path's transactions stay transactions."""
    assert ledger.claim(WINDOW, 1, "w", 3, running=True).status is ClaimStatus.CLAIMED
    assert ledger.complete(WINDOW.job, WINDOW.window_start, 1, RunState.SUCCEEDED, duration=1.0)
    pooled = ledger.engine.raw_connection()
    try:
        assert pooled.driver_connection is not None
        assert pooled.driver_connection.autocommit is False
    finally:
        pooled.close()
    assert ledger.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_database_error_is_sqlalchemys_and_the_connection_is_discarded(
    ledger: Ledger, postgres_url: str
) -> None:
    """The server ends the connection mid-use: the caller sees SQLAlchemy's OperationalError
    marked as a disconnect (what the guard retries) without the statement's parameters, and the
    next claim works on a new connection."""
    ledger.claim(WINDOW, 1, "w", 3, running=True)  # a pooled connection now exists
    pooled = ledger.engine.raw_connection()
    assert pooled.driver_connection is not None
    pid = pooled.driver_connection.info.backend_pid
    pooled.close()
    killer = sa.create_engine(postgres_url)
    with killer.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    killer.dispose()
    later = NewWindow("single", START + timedelta(hours=1), "single@2026-03-17T07:00:00Z",
                      START + timedelta(hours=1))  # fmt: skip
    with pytest.raises(sa.exc.OperationalError) as caught:
        ledger.claim(later, 2, "w", 3, running=True)
    assert caught.value.connection_invalidated
    assert later.window_key not in str(caught.value)  # parameters stay out of the text
    assert ledger.claim(later, 2, "w", 3, running=True).status is ClaimStatus.CLAIMED


def test_a_database_that_refuses_connections_raises_sqlalchemys_error(postgres_url: str) -> None:
    """A failed connect (the pool lets the driver's error through) is SQLAlchemy's
    OperationalError too: the guard retries it while the database is down (scenario 17)."""
    url = sa.make_url(postgres_url).set(database="agentcron_no_such_database")
    ledger = Ledger(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(sa.exc.OperationalError):
            ledger.claim(WINDOW, 1, "w", 3, running=True)
        with pytest.raises(sa.exc.OperationalError):
            ledger.complete(WINDOW.job, WINDOW.window_start, 1, RunState.SUCCEEDED, duration=1.0)
    finally:
        ledger.close()


def test_a_batch_of_completions_is_one_statement_fenced_per_run(
    ledger: Ledger, statements: list[tuple[str, bool]]
) -> None:
    """The async worker's batches: one UPDATE … FROM unnest for all, each run on its own token;
    results, errors and durations land on their own rows (NULL arrays included)."""
    windows = [NewWindow("single", START + timedelta(hours=i),
                         f"single@2026-03-17T{6 + i:02d}:00:00Z", START + timedelta(hours=i))
               for i in range(3)]  # fmt: skip
    for i, window in enumerate(windows):
        ledger.claim(window, 10 + i, "w", 3, running=True)
    ledger.claim(windows[2], 20, "newer", 3, running=True)  # the holder of token 12 is stale
    statements.clear()
    requests = [
        ledger.complete_request("single", windows[0].window_start, 10, RunState.SUCCEEDED,
                                result={"rows": [1, 2]}, duration=0.25),
        ledger.complete_request("single", windows[1].window_start, 11, RunState.FAILED,
                                error_type="ValueError", error_message="bad", duration=1.5),
        ledger.complete_request("single", windows[2].window_start, 12, RunState.SUCCEEDED,
                                duration=2.0),
    ]  # fmt: skip
    assert ledger.complete_many(requests) == [True, True, False]
    assert [autocommit for _, autocommit in statements] == [True], statements
    first, second, third = (ledger.get("single", w.window_start) for w in windows)
    assert first is not None and second is not None and third is not None
    assert (first.state, first.result, first.duration) == (RunState.SUCCEEDED, {"rows": [1, 2]}, 0.25)
    assert (second.state, second.error_type, second.error_message) == (
        RunState.FAILED, "ValueError", "bad")
    assert (third.state, third.token, third.worker_id) == (RunState.RUNNING, 20, "newer")
    assert ledger.complete_many([requests[0]]) == [False]  # done: no second completion


def test_a_batch_of_claims_is_one_statement_and_the_rest_take_the_general_path(
    ledger: Ledger, statements: list[tuple[str, bool]]
) -> None:
    """The async worker's batches: fresh, scheduled and lost windows in one statement; a window
    asked for twice and a forced claim go through the general path after it, with its rules."""
    windows = [NewWindow("single", START + timedelta(hours=i),
                         f"single@2026-03-17T{6 + i:02d}:00:00Z", START + timedelta(hours=i))
               for i in range(4)]  # fmt: skip
    ledger.record_scheduled([windows[1]])
    ledger.claim(windows[2], 50, "holder", 5, running=True)  # held by a newer token
    ledger.claim(windows[3], 1, "old", 5, running=True)
    assert ledger.complete("single", windows[3].window_start, 1, RunState.SUCCEEDED, duration=1.0)
    statements.clear()
    requests = [ClaimRequest(windows[0], 10, "w", 3, running=True),
                ClaimRequest(windows[1], 11, "w", 3, running=True),
                ClaimRequest(windows[2], 12, "w", 3, running=True),
                ClaimRequest(windows[3], 13, "w", 3, force=True, running=True),
                ClaimRequest(windows[0], 14, "w", 3, running=True)]  # fmt: skip
    claims = ledger.claim_many(requests)
    assert [c.status for c in claims] == [
        ClaimStatus.ACTIVE, ClaimStatus.CLAIMED, ClaimStatus.ACTIVE, ClaimStatus.CLAIMED,
        ClaimStatus.CLAIMED]  # windows[0] twice: the general path, the newer token holds it
    assert statements[0][1] is True and "unnest" in statements[0][0]
    assert claims[1].previous is not None and claims[1].previous.state is RunState.SCHEDULED
    assert claims[1].record.token == 11 and claims[1].record.attempt == 1
    assert claims[3].record.attempt == 1 and claims[3].previous is not None  # forced rerun
    assert claims[4].record.token == 14
    assert row(ledger)[2] == 14


def test_record_scheduled_inserts_new_windows_once_with_their_instants(ledger: Ledger) -> None:
    """The bulk insert sends each column as one text: every row keeps its own job, key, window
    start and slot (aware UTC), and a window recorded before is not returned again."""
    base = datetime(2030, 1, 1, tzinfo=UTC)
    windows = [NewWindow(f"job{i}", base + timedelta(minutes=i % 3),
                         f"job{i}@{i % 3}", base + timedelta(minutes=i % 3, seconds=5))
               for i in range(7)]  # fmt: skip
    assert ledger.record_scheduled([]) == []
    assert sorted(ledger.record_scheduled(windows[:4])) == sorted(w.window_key for w in windows[:4])
    assert sorted(ledger.record_scheduled(windows)) == sorted(w.window_key for w in windows[4:])
    with ledger.engine.begin() as conn:
        rows = conn.execute(sa.text("select job, window_key, window_start, slot, trigger, state"
                                    " from runs order by job")).all()  # fmt: skip
    assert [(r.job, r.window_key, r.window_start, r.slot, r.trigger, r.state) for r in rows] == [
        (w.job, w.window_key, w.window_start, w.slot, "schedule", "scheduled") for w in windows]


def test_a_window_key_holding_a_newline_is_refused_before_anything_is_sent() -> None:
    from agentcron.ledger.batch_sql import pg_insert_params

    window = NewWindow("job", datetime(2030, 1, 1, tzinfo=UTC), "job@x\ny",
                       datetime(2030, 1, 1, tzinfo=UTC))  # fmt: skip
    with pytest.raises(ValueError, match="newline"):
        pg_insert_params([window], datetime(2030, 1, 1, tzinfo=UTC))
