"""Jobs alike but for their names are compiled once; each still gets a spec of its own job."""

from __future__ import annotations

from typing import Any

import pytest

from agentcron import jobs as jobs_module
from agentcron.errors import ConfigError
from agentcron.jobs import Job, compile_jobs
from agentcron.spec_cache import SpecCache, template_key

AGENT = "tests.unit.test_spec_cache:agent"


def agent(ctx: object) -> str:
    return "ok"


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the jobs that went through compile_job."""
    names: list[str] = []
    real = jobs_module.compile_job

    def counting(job: Job, *args: Any, **kwargs: Any) -> Any:
        names.append(job.name)
        return real(job, *args, **kwargs)

    monkeypatch.setattr("agentcron.spec_cache.compile_job", counting)
    return names


def test_a_comprehension_is_compiled_once_and_each_spec_holds_its_own_job(
    compiled: list[str],
) -> None:
    jobs = [Job(f"j{i}", agent=AGENT, schedule="* * * * *") for i in range(50)]
    specs = compile_jobs(jobs)
    assert compiled == ["j0"]
    assert [s.name for s in specs] == [f"j{i}" for i in range(50)]
    assert all(s.job is j for s, j in zip(specs, jobs, strict=True))
    assert specs[3].schedule is specs[0].schedule and specs[3].queue == specs[0].queue


def test_equal_fields_in_other_objects_share_a_spec_other_values_do_not(compiled: list[str]) -> None:
    cache = SpecCache()
    a = cache.compile(Job("a", agent=AGENT, schedule="*/5m", config={"n": [1]}))
    b = cache.compile(Job("b", agent=AGENT, schedule="*/5m", config={"n": [1]}))  # equal values
    c = cache.compile(Job("c", agent=AGENT, schedule="*/5m", config={"n": [2]}))
    d = cache.compile(Job("d", agent=AGENT, schedule="*/5m", config={"n": [1]}, max_retries=2))
    assert compiled == ["a", "c", "d"]
    assert (a.name, b.name, c.name, d.name) == ("a", "b", "c", "d")
    assert b.job.config == {"n": [1]} and c.job.config == {"n": [2]}


def test_values_equal_across_types_are_not_the_same_template() -> None:
    one = Job("a", agent=AGENT, schedule="*/5m", lease_ttl=1)
    true = Job("a", agent=AGENT, schedule="*/5m", lease_ttl=True)
    assert template_key(one) != template_key(true)


def test_a_bad_job_among_good_ones_is_named_and_budgets_are_compiled_per_job(
    compiled: list[str],
) -> None:
    jobs = [Job(f"j{i}", agent=AGENT, schedule="* * * * *") for i in range(3)]
    jobs.append(Job("bad name", agent=AGENT, schedule="* * * * *"))
    with pytest.raises(ConfigError) as raised:
        compile_jobs(jobs)
    assert "bad name" in str(raised.value)
    compiled.clear()
    budget = {"cost_usd": 1.0, "per": "day"}
    specs = compile_jobs([Job(f"b{i}", agent=AGENT, schedule="@daily", budget=budget)
                          for i in range(2)])  # fmt: skip
    assert compiled == ["b0", "b1"]
    assert [s.budget.name if s.budget else None for s in specs] == ["job:b0", "job:b1"]


def test_the_beat_takes_the_files_compiled_specs_without_compiling_again(
    compiled: list[str], tmp_path: Any
) -> None:
    from agentcron.beat.sources import SpecSource
    from agentcron.settings import Settings

    jobs = [Job("a", agent=AGENT, schedule="@daily"), Job("b", agent=AGENT, schedule="@hourly")]
    specs = compile_jobs(jobs)
    compiled.clear()
    source = SpecSource(None, jobs, settings=Settings(), file_specs=specs)
    loaded = source.load()
    assert compiled == [] and loaded["a"] is specs[0] and loaded["b"] is specs[1]
    other = Job("a", agent=AGENT, schedule="@daily")  # not the object compiled: compiled
    assert source.catalogue.file_spec(other) is not specs[0] and compiled == ["a"]
