"""One catalogue, one set of rules: the beat, the workers and the watchdog read the same rows of
the schedules table and differ only where the catalogue says they do (``include_paused``, the
workers compiling the file's jobs from the file)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcron.beat.sources import SpecSource
from agentcron.catalogue import Catalogue, load_specs, watched_specs
from agentcron.jobs import Job, compile_job
from agentcron.ledger.schedules import ScheduleStore
from agentcron.ledger.store import Ledger
from agentcron.settings import Settings

World = tuple[Ledger, ScheduleStore, Settings, list[Job]]
AGENTS = "def tick(ctx):\n    return 'ok'\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    (tmp_path / "catalogue_agents.py").write_text(AGENTS)
    (tmp_path / "beat_schedule.py").write_text("JOBS = []\n")
    sys.path.insert(0, str(tmp_path))
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    store = ScheduleStore(ledger.engine)
    settings = Settings(schedule_path=tmp_path / "beat_schedule.py",
                        agent_modules="catalogue_agents")  # fmt: skip
    agent = "catalogue_agents:tick"
    file_jobs = [Job("filed", agent=agent, schedule="@daily"),
                 Job("file_off", agent=agent, schedule="@daily")]  # fmt: skip
    store.sync_file(file_jobs)  # both rows enabled
    file_jobs[1] = Job("file_off", agent=agent, schedule="@daily", enabled=False)  # file edited
    store.upsert([Job("live", agent=agent, schedule="@hourly"),
                  Job("paused", agent=agent, schedule="@hourly"),
                  Job("gone", agent=agent, schedule="@hourly"),
                  Job("undeclared", agent="os:getcwd", schedule="@hourly")], "api")  # fmt: skip
    store.pause("paused")
    store.remove("gone")
    try:
        yield ledger, store, settings, file_jobs
    finally:
        sys.path.remove(str(tmp_path))
        ledger.close()


def test_the_beat_plans_enabled_rows_and_the_file_decides_for_its_own(world: World) -> None:
    _ledger, store, settings, file_jobs = world
    source = SpecSource(store, file_jobs, [settings.schedule_path.parent], settings=settings)
    assert sorted(source.load()) == ["filed", "live"]


def test_the_workers_load_runtime_rows_paused_ones_included(world: World) -> None:
    ledger, _store, settings, file_jobs = world
    assert sorted(s.name for s in load_specs(ledger.engine, settings, file_jobs)) == ["live", "paused"]


def test_the_watchdog_watches_what_the_beat_plans(world: World) -> None:
    _ledger, store, settings, file_jobs = world
    known = [compile_job(job) for job in file_jobs]  # a process's own catalogue: the file
    catalogue = Catalogue(settings, file_jobs)
    assert sorted(s.name for s in watched_specs(known, store, catalogue)) == ["filed", "live"]


def test_a_row_is_a_job_by_one_rule(world: World) -> None:
    _ledger, store, settings, file_jobs = world
    catalogue = Catalogue(settings, file_jobs)
    rows = {e.name: e for e in store.entries(include_removed=True)}
    assert catalogue.spec_of(rows["gone"], include_paused=True) is None
    assert catalogue.spec_of(rows["paused"], include_paused=False) is None
    paused = catalogue.spec_of(rows["paused"], include_paused=True)
    assert paused is not None and paused.name == "paused"
    assert catalogue.spec_of(rows["file_off"], include_paused=True) is None  # the file disables it
    assert catalogue.is_file_row(rows["filed"]) and not catalogue.is_file_row(rows["live"])
