"""The schedules table on PostgreSQL: many jobs upserted in one statement (each distinct
definition sent once), with the same rules as the generic path (a runtime pause survives the
file's upsert, a job back in the file is enabled again, the last of two jobs of one name wins)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentcron.clock import FrozenClock
from agentcron.jobs import Job
from agentcron.ledger import Ledger
from agentcron.ledger.schedules import ScheduleStore
from tests.services import reset_postgres

pytestmark = pytest.mark.integration
AGENT = "examples.market:analyse"
EVERY = "* * * * *"


@pytest.fixture
def store(postgres_url: str, clock: FrozenClock,
          driver_statements: list[tuple[str, bool]]) -> Iterator[ScheduleStore]:  # fmt: skip
    reset_postgres(postgres_url)
    ledger = Ledger(postgres_url, clock)
    ledger.upgrade()
    yield ScheduleStore(ledger.engine, clock)
    ledger.close()
    reset_postgres(postgres_url)  # the jobs x and y would be later tests' (workers alert on them)


def test_file_jobs_are_one_insert_each_definition_stored_as_its_own(
    store: ScheduleStore, driver_statements: list[tuple[str, bool]]
) -> None:
    jobs = [Job(f"j{i}", agent=AGENT, schedule=EVERY) for i in range(500)]
    jobs += [Job("k", agent=AGENT, schedule=EVERY, config={"n": 1, "text": "a\nb"}),
             Job("m", agent=AGENT, schedule="@daily", limits=["x"], deliver=["log:"])]  # fmt: skip
    driver_statements.clear()
    revision = store.sync_file(jobs)
    inserts = [s for s, _ in driver_statements if "INSERT INTO schedules" in s]
    assert len(inserts) == 1
    entries = {e.name: e for e in store.entries()}
    assert len(entries) == 502 and all(e.revision == revision for e in entries.values())
    assert entries["j7"].definition["config"] == {} and entries["j7"].source == "file"
    assert entries["k"].definition["config"] == {"n": 1, "text": "a\nb"}
    assert entries["m"].definition["schedule"] == "@daily"
    assert entries["m"].definition["limits"] == ["x"]
    assert entries["m"].updated_at is not None and entries["m"].updated_at.tzinfo is not None
    assert store.sync_file(jobs) == revision  # read back equal: nothing written


def test_a_runtime_pause_survives_and_a_job_back_in_the_file_is_enabled(
    store: ScheduleStore,
) -> None:
    jobs = [Job("a", agent=AGENT, schedule=EVERY), Job("b", agent=AGENT, schedule=EVERY)]
    store.sync_file(jobs)
    store.pause("b")
    store.sync_file([Job("b", agent=AGENT, schedule="@hourly")])  # a left the file
    entries = {e.name: e for e in store.entries()}
    assert not entries["b"].enabled and entries["b"].definition["schedule"] == "@hourly"
    assert not entries["a"].enabled and entries["a"].source == "file-removed"
    store.sync_file(jobs)
    entries = {e.name: e for e in store.entries()}
    assert entries["a"].enabled and entries["a"].source == "file"
    assert not entries["b"].enabled  # still paused


def test_api_upsert_replaces_and_two_jobs_of_one_name_keep_the_last(store: ScheduleStore) -> None:
    store.upsert([Job("x", agent=AGENT, schedule=EVERY, enabled=False)], "api")
    store.upsert([Job("x", agent=AGENT, schedule="@daily"), Job("y", agent=AGENT, schedule=EVERY),
                  Job("y", agent=AGENT, schedule="@hourly")], "api")  # fmt: skip
    entries = {e.name: e for e in store.entries()}
    assert entries["x"].enabled and entries["x"].definition["schedule"] == "@daily"
    assert entries["y"].definition["schedule"] == "@hourly" and entries["y"].source == "api"
