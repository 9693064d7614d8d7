"""Runtime schedules name the schedule file's BUDGETS and LIMITS: resolved (so enforced) by the
workers' runtime, refused when unknown (``schedules add`` exits 2 in one line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcron.cli import main
from agentcron.clock import FrozenClock
from agentcron.jobs import Job
from agentcron.ledger.schedules import ScheduleStore
from agentcron.runtime import Runtime
from agentcron.settings import Settings

SCHEDULE = """
from agentcron import Budget, Job, Limit
BUDGETS = [Budget("shared", cost_usd=2.0, per="day")]
LIMITS = [Limit("openai", concurrency=4)]
JOBS = [Job("file_job", agent="dyn_decl_agents:run", schedule="@daily", budget="shared")]
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "dyn_decl_agents.py").write_text("def run(ctx):\n    return 1\n")
    (tmp_path / "beat_schedule.py").write_text(SCHEDULE)
    return {"AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            "AGENTCRON_DATA_DIR": str(tmp_path / "data"), "AGENTCRON_AGENT_MODULES": "",
            "AGENTCRON_SCHEDULE_PATH": str(tmp_path / "beat_schedule.py")}  # fmt: skip


def _add(env: dict[str, str], *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["schedules", "add", "dyn", "--agent", "dyn_decl_agents:run",
                                       "--schedule", "@hourly", *extra], env=env)  # fmt: skip
    return result.exit_code, result.output


def _runtime(env: dict[str, str], clock: FrozenClock) -> Runtime:
    settings = Settings(database_url=env["AGENTCRON_DATABASE_URL"],
                        data_dir=Path(env["AGENTCRON_DATA_DIR"]),
                        schedule_path=Path(env["AGENTCRON_SCHEDULE_PATH"]))  # fmt: skip
    return Runtime(settings, clock)


def test_a_named_budget_and_limit_of_a_runtime_schedule_are_resolved(
        env: dict[str, str], clock: FrozenClock) -> None:  # fmt: skip
    code, output = _add(env, "--budget", "shared", "--limit", "openai")
    assert code == 0, output
    runtime = _runtime(env, clock)
    try:
        spec = runtime.spec("dyn")
        assert spec.budget is not None and spec.budget.name == "shared"
        assert spec.budget.cost_usd == 2.0
        assert sorted(spec.budget_jobs) == ["dyn", "file_job"]  # one budget, spent by both
        assert sorted(runtime.spec("file_job").budget_jobs) == ["dyn", "file_job"]
        assert spec.limits == ("openai",) and "openai" in spec.declared_limits
    finally:
        runtime.close()


@pytest.mark.parametrize(("option", "says"), [("--budget", "no BUDGETS entry"),
                                              ("--limit", "no such limit")])
def test_schedules_add_refuses_an_unknown_name_in_one_line(env: dict[str, str], option: str,
                                                           says: str) -> None:  # fmt: skip
    code, output = _add(env, option, "nope")
    assert code == 2 and output.count("\n") == 1 and says in output and "nope" in output
    assert "no schedules" in CliRunner().invoke(main, ["schedules", "list"], env=env).output


def test_a_row_naming_an_unknown_budget_is_refused_by_the_workers(
        env: dict[str, str], clock: FrozenClock, caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    runtime = _runtime(env, clock)
    try:
        store = ScheduleStore(runtime.ledger.engine, clock)
        store.upsert([Job("forged", agent="dyn_decl_agents:run", schedule="@daily",
                          budget="nope")], "api")  # fmt: skip
        runtime.reload()
        assert "forged" not in {s.name for s in runtime.specs()}
        assert "ALERT forged window - refused" in caplog.text and "nope" in caplog.text
    finally:
        runtime.close()
