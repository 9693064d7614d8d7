"""Job declarations: validation names the job, the field and the value; all errors at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agentcron.agents import AgentKind, resolve_agent
from agentcron.context import RunContext
from agentcron.errors import ConfigError
from agentcron.jobs import ASYNC_QUEUE, SYNC_QUEUE, Job, compile_job, compile_jobs
from agentcron.schedule_file import load_jobs

ROOT = Path(__file__).resolve().parents[2]


def sync_agent(ctx: RunContext) -> str:
    return ctx.job


async def async_agent(ctx: RunContext) -> str:
    return ctx.job


class RunObject:
    def run(self, task: str) -> str:
        return task


class AsyncRunObject:
    async def arun(self, task: str) -> str:
        return task


class StartObject:
    async def astart(self, task: str) -> str:
        return task


@pytest.mark.parametrize(
    ("agent", "kind", "takes_task"),
    [(sync_agent, AgentKind.SYNC, False), (async_agent, AgentKind.ASYNC, False),
     (RunObject(), AgentKind.SYNC, True), (AsyncRunObject(), AgentKind.ASYNC, True),
     (StartObject(), AgentKind.ASYNC, True),
     ("examples.market:analyse", AgentKind.ASYNC, False),
     ("examples.logscan:scan", AgentKind.SYNC, False),
     ("examples.briefing:briefing", AgentKind.SYNC, True),
     ("examples.churn:report", AgentKind.ASYNC, True)],
)  # fmt: skip
def test_agent_kind_is_detected_at_registration(agent: object, kind: AgentKind, takes_task: bool) -> None:
    resolved = resolve_agent(agent, [ROOT])
    assert resolved.kind is kind and resolved.takes_task is takes_task


def test_queue_follows_the_kind_unless_overridden() -> None:
    assert compile_job(Job("a", agent=sync_agent, schedule="@daily")).queue == SYNC_QUEUE
    assert compile_job(Job("b", agent=async_agent, schedule="@daily")).queue == ASYNC_QUEUE
    assert compile_job(Job("c", agent=sync_agent, schedule="@daily", queue="q")).queue == "q"


def test_the_lease_is_per_window_only_when_the_job_allows_overlap() -> None:
    key = "a@2026-01-01T00:00:00Z"
    assert compile_job(Job("a", agent=sync_agent, schedule="@daily")).lease_name(key) == "a"
    allow = compile_job(Job("a", agent=sync_agent, schedule="@daily", overlap="allow"))
    assert allow.lease_name(key) == key


def test_defaults_and_durations() -> None:
    spec = compile_job(Job("a", agent=sync_agent, schedule="every 15 minutes", timeout="90s",
                           jitter=5, misfire_grace=timedelta(minutes=2)))  # fmt: skip
    assert spec.timeout == timedelta(seconds=90)
    assert spec.jitter == timedelta(seconds=5)
    assert spec.catchup_window == timedelta(minutes=15)
    assert spec.misfire_grace == timedelta(minutes=2)
    assert spec.job.max_retries == 3 and spec.job.overlap == "skip"


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [({"schedule": "61 * * * *"}, "minute", "61"),
     ({"overlap": "sometimes"}, "overlap", "sometimes"),
     ({"window": "fortnight"}, "window", "fortnight"),
     ({"coalesce": "most"}, "coalesce", "most"),
     ({"max_retries": -1}, "max_retries", "-1"),
     ({"max_retries": 0}, "max_retries", "0"),
     ({"tz": "Mars/Olympus"}, "tz", "Mars/Olympus"),
     ({"agent": "no_such_module:thing"}, "agent", "no_such_module:thing"),
     ({"agent": "examples.logscan:DATA"}, "agent", "examples.logscan:DATA"),
     ({"agent": 42}, "agent", "42"),
     ({"config": {"bad": {1, 2}}}, "config", "bad"),
     ({"config": {"blob": "x" * 70_000}}, "config", "bytes"),
     ({"timeout": "soon"}, "timeout", "soon"),
     ({"jitter": -5}, "jitter", "-5"),
     ({"lease_ttl": 0.1}, "lease_ttl", "0.1"),
     ({"start": "2026-13-01"}, "time", "2026-13-01"),
     ({"on_success": "nope:cb"}, "on_success", "nope:cb")],
)  # fmt: skip
def test_bad_fields_name_job_field_and_value(changes: dict[str, object], field: str, value: str) -> None:
    fields: dict[str, object] = {"agent": "examples.logscan:scan", "schedule": "@daily"}
    fields.update(changes)
    with pytest.raises(ConfigError) as info:
        compile_jobs([Job("x", **fields)], [ROOT])  # type: ignore[arg-type]
    message = str(info.value)
    assert "job 'x'" in message and field in message and value in message


def test_every_problem_of_a_file_is_reported_and_nothing_compiles() -> None:
    jobs = [
        Job("good", agent=sync_agent, schedule="@daily"),
        Job("bad one", agent=sync_agent, schedule="@daily"),
        Job("x", agent=sync_agent, schedule="61 * * * *", overlap="nope"),
        Job("good", agent=sync_agent, schedule="@hourly"),
    ]
    with pytest.raises(ConfigError) as info:
        compile_jobs(jobs)
    problems = info.value.problems
    assert {p.field for p in problems} >= {"name", "schedule (minute)", "overlap"}
    assert any("duplicate" in p.reason for p in problems)


def test_load_jobs_from_the_shipped_schedule() -> None:
    specs = load_jobs(ROOT / "beat_schedule.py")
    names = {s.name: s for s in specs}
    assert set(names) == {"daily_market_analysis", "log_anomaly_monitor", "weekday_briefing",
                          "weekly_churn_report", "monthly_compliance_audit"}  # fmt: skip
    assert {s.kind for s in specs} == {AgentKind.SYNC, AgentKind.ASYNC}
    mailed = {n for n, s in names.items() if any(t.kind == "email" for t in s.targets)}
    assert mailed >= {"daily_market_analysis", "weekly_churn_report"}


def test_a_file_that_fails_to_load_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("JOBS = [undefined_name]\n")
    with pytest.raises(ConfigError, match="NameError"):
        load_jobs(path)
    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="JOBS"):
        load_jobs(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_jobs(tmp_path / "missing.py")


def test_agent_paths_resolve_from_the_schedule_files_folder(tmp_path: Path) -> None:
    (tmp_path / "myagents.py").write_text("def go(ctx):\n    return 1\n")
    (tmp_path / "jobs.py").write_text(
        "from agentcron import Job\nJOBS = [Job('j', agent='myagents:go', schedule='@daily')]\n"
    )
    (spec,) = load_jobs(tmp_path / "jobs.py")
    assert spec.agent.kind is AgentKind.SYNC
