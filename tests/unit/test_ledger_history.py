"""A forced run never overwrites a window's earlier record: it moves to ``run_history`` (issue
13 item 7), over SQLite and PostgreSQL, and ``agentcron runs`` shows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcron.cli import main
from agentcron.clock import FrozenClock
from agentcron.ledger import ClaimStatus, Ledger
from agentcron.ledger.history import history_of
from agentcron.ledger.records import ClaimRequest, NewWindow, RunState
from tests.services import reset_postgres

START = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)
WINDOW = NewWindow("report", START, "report@2026-03-17T06:00:00Z", START, "schedule")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock) -> Iterator[Ledger]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
    store = Ledger(url, clock)
    store.upgrade()
    yield store
    store.close()


def test_forced_runs_keep_every_earlier_record(ledger: Ledger) -> None:
    ledger.claim(WINDOW, token=1, worker_id="a", max_attempts=3)
    ledger.complete("report", START, 1, RunState.SUCCEEDED, result={"first": True})
    forced = ledger.claim(WINDOW, token=2, worker_id="b", max_attempts=3, force=True)
    assert forced.status is ClaimStatus.CLAIMED
    ledger.complete("report", START, 2, RunState.FAILED, error_type="E", error_message="boom")
    [second] = ledger.claim_many([ClaimRequest(WINDOW, 3, "c", 3, force=True)])
    assert second.status is ClaimStatus.CLAIMED
    earlier = history_of(ledger.engine, [WINDOW.window_key])[WINDOW.window_key]
    assert [(r.state, r.result, r.worker_id, r.token) for r in earlier] == [
        (RunState.SUCCEEDED, {"first": True}, "a", 1), (RunState.FAILED, None, "b", 2)]
    assert earlier[1].error_message == "boom"
    current = ledger.get("report", START)
    assert current is not None and (current.token, current.state) == (3, RunState.CLAIMED)


def test_a_losing_forced_claim_keeps_nothing(ledger: Ledger) -> None:
    ledger.claim(WINDOW, token=5, worker_id="a", max_attempts=3)
    ledger.complete("report", START, 5, RunState.SUCCEEDED)
    stale = ledger.claim(WINDOW, token=4, worker_id="b", max_attempts=3, force=True)
    assert stale.status is ClaimStatus.DONE
    assert history_of(ledger.engine, [WINDOW.window_key]) == {}


def test_runs_shows_the_earlier_records(tmp_path: Path, clock: FrozenClock) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url, clock)
    ledger.claim(WINDOW, token=1, worker_id="a", max_attempts=3)
    ledger.complete("report", START, 1, RunState.SUCCEEDED)
    ledger.claim(WINDOW, token=2, worker_id="b", max_attempts=3, force=True)
    ledger.close()
    env = {"AGENTCRON_DATABASE_URL": url, "AGENTCRON_DATA_DIR": str(tmp_path)}
    table = CliRunner().invoke(main, ["runs"], env=env)
    assert table.exit_code == 0, table.output
    lines = [line for line in table.output.splitlines() if WINDOW.window_key in line]
    assert "claimed" in lines[0] and "succeeded (earlier)" in lines[1]
    data = json.loads(CliRunner().invoke(main, ["runs", "--json"], env=env).output)
    assert [h["state"] for h in data[0]["history"]] == ["succeeded"]


def test_a_force_grant_is_used_once(ledger: Ledger, clock: FrozenClock) -> None:
    from agentcron.ledger.history import grant_force, use_force

    key = WINDOW.window_key
    assert not use_force(ledger.engine, key, clock.now())  # forged: nothing granted
    grant_force(ledger.engine, [key, key], clock.now(), "trigger")
    assert use_force(ledger.engine, key, clock.now())
    assert use_force(ledger.engine, key, clock.now())
    assert not use_force(ledger.engine, key, clock.now())  # a replay finds none left
    assert not use_force(ledger.engine, "other@2026-03-17T06:00:00Z", clock.now())
