"""``agentcron spend`` and ``agentcron limits`` on a temp SQLite ledger (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcron.cli import main
from agentcron.clock import SYSTEM_CLOCK
from agentcron.ledger import Ledger
from agentcron.limits import Limit
from agentcron.limits.sql import SqlLimitStore
from agentcron.spend.store import SpendStore
from agentcron.spend.usage import ModelUsage

SCHEDULE = """
from agentcron import Budget, Job, Limit
BUDGETS = [Budget("shared", cost_usd=2.0, per="day")]
LIMITS = [Limit("openai", concurrency=4, per_minute=60)]
JOBS = [Job("a", agent="agents:run", schedule="@daily", budget="shared", limits=["openai"]),
        Job("b", agent="agents:run", schedule="@daily", budget={"tokens": 1000, "per": "month"})]
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "agents.py").write_text("def run(ctx):\n    return 1\n")
    (tmp_path / "beat_schedule.py").write_text(SCHEDULE)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url)
    store = SpendStore(ledger.engine)
    now = SYSTEM_CLOCK.now()
    store.record("a", now, "a@x", 1, {"gpt": ModelUsage(1000, 200, 0.5, 2)}, now)
    store.record("b", now, "b@x", 1, {"gpt": ModelUsage(300, 100, 0.1, 1),
                                      "claude": ModelUsage(10, 5, 0.01, 1)}, now)
    SqlLimitStore(ledger.engine, SYSTEM_CLOCK).acquire_slot(
        Limit("openai", concurrency=4, per_minute=60), "a@x#1")
    ledger.close()
    return {"AGENTCRON_DATABASE_URL": url, "AGENTCRON_DATA_DIR": str(tmp_path / "data"),
            "AGENTCRON_SCHEDULE_PATH": str(tmp_path / "beat_schedule.py"),
            # the slot was taken in the ledger: read it there, whatever an earlier test of this
            # process left in its environment
            "AGENTCRON_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
            "AGENTCRON_LEASE_BACKEND": "sql"}


def test_spend_by_job_and_model_and_budgets_left(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["spend", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by = {(r["job"], r["model"]): r for r in data["spend"]}
    assert by[("a", "gpt")]["cost_usd"] == 0.5 and by[("b", "claude")]["input_tokens"] == 10
    budgets = {b["budget"]: b for b in data["budgets"]}
    assert budgets["shared"]["cost_left"] == 1.5 and budgets["shared"]["jobs"] == ["a"]
    assert budgets["job:b"]["tokens_left"] == 1000 - 415 and budgets["job:b"]["per"] == "month"
    table = CliRunner().invoke(main, ["spend", "--job", "b", "--per", "month"], env=env)
    assert table.exit_code == 0 and "claude" in table.output and "job:b" in table.output
    assert "shared" not in table.output


def test_limits_shows_holders_and_recent_use(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["limits", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (limit,) = json.loads(result.output)
    assert limit["limit"] == "openai" and limit["holders"] == ["a@x#1"] and limit["waiters"] == []
    assert "1/4" in CliRunner().invoke(main, ["limits"], env=env).output


def test_bad_input_exits_2_and_a_down_ledger_exits_1(env: dict[str, str]) -> None:
    bad = CliRunner().invoke(main, ["limits"], env={**env, "AGENTCRON_LIMITS": "[{"})
    assert bad.exit_code == 2 and "AGENTCRON_LIMITS" in bad.output
    assert CliRunner().invoke(main, ["spend", "--per", "year"], env=env).exit_code == 2
    down = {**env, "AGENTCRON_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/none"}
    result = CliRunner().invoke(main, ["spend"], env=down)
    assert result.exit_code == 1 and "unavailable" in result.output
