"""``agentcron db upgrade`` and ``agentcron runs`` against a temp SQLite ledger (CliRunner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcron.cli import main
from agentcron.clock import FrozenClock
from agentcron.ledger import Ledger
from agentcron.ledger.records import NewWindow, RunState
from agentcron.migrations import current_revision

START = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'cli' / 'ledger.sqlite'}"}


def seed(url: str) -> None:
    ledger = Ledger(url, FrozenClock(START))
    windows = [NewWindow("daily", START, "daily@2026-03-17T06:00:00Z", START),
               NewWindow("hourly", START, "hourly@2026-03-17T06:00:00Z", START)]  # fmt: skip
    ledger.record_scheduled(windows)
    ledger.claim(windows[0], 1, "w1", 3)
    ledger.start("daily", START, 1)
    ledger.complete("daily", START, 1, RunState.FAILED, error_type="Boom", error_message="bad")
    ledger.close()


def test_db_upgrade_migrates_and_redacts(env: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert "at revision 0004" in result.output
    assert (tmp_path / "cli" / "ledger.sqlite").exists()
    again = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert again.exit_code == 0, again.output


def test_db_upgrade_never_prints_a_password() -> None:
    env = {"AGENTCRON_DATABASE_URL": "postgresql+psycopg://u:s3cret@127.0.0.1:1/x"}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert "u:***@127.0.0.1:1/x" in result.output
    assert "s3cret" not in result.output
    assert result.exit_code == 1


def test_runs_json_lists_runs_with_iso_z_times(env: dict[str, str]) -> None:
    seed(env["AGENTCRON_DATABASE_URL"])
    result = CliRunner().invoke(main, ["runs", "--json"], env=env)
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output)
    assert {r["window_key"] for r in runs} == {"daily@2026-03-17T06:00:00Z",
                                               "hourly@2026-03-17T06:00:00Z"}  # fmt: skip
    daily = next(r for r in runs if r["job"] == "daily")
    assert daily["state"] == "failed"
    assert daily["started_at"] == "2026-03-17T06:00:00Z"
    assert daily["error_message"] == "bad"
    filtered = CliRunner().invoke(main, ["runs", "--json", "--job", "hourly"], env=env)
    assert [r["state"] for r in json.loads(filtered.output)] == ["scheduled"]
    by_state = CliRunner().invoke(main, ["runs", "--json", "--state", "failed", "--limit", "5"],
                                  env=env)  # fmt: skip
    assert [r["job"] for r in json.loads(by_state.output)] == ["daily"]


def test_runs_table_shows_the_columns(env: dict[str, str]) -> None:
    seed(env["AGENTCRON_DATABASE_URL"])
    result = CliRunner().invoke(main, ["runs"], env=env)
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    for column in ("window key", "state", "attempt", "trigger", "started", "duration", "error"):
        assert column in header
    assert any("daily@2026-03-17T06:00:00Z" in r and "Boom: bad" in r for r in rows)


def test_runs_rejects_an_unknown_state(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["runs", "--state", "finished"], env=env)
    assert result.exit_code == 2
    assert "finished" in result.output


def test_runs_on_an_empty_default_ledger_creates_it(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["runs", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
    assert current_revision(Ledger(env["AGENTCRON_DATABASE_URL"]).engine) == "0004"
