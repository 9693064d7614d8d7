"""What a prefork child needs of its own with ``AGENTCRON_SYNC_CLAIM=main``
(:mod:`workers.children`): the main process has claimed the run, so a ledger outage must not
fail the attempt of a job the schedule file declares; and a child lost mid-attempt counts."""

from __future__ import annotations

import logging
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy

from agentcron.context import RunContext
from agentcron.guard.modes import WorkerLost
from agentcron.settings import Settings
from workers.children import ChildMode
from workers.in_child import executor_loaders

SCHEDULE = """
from agentcron import Job

def agent(ctx):
    return "ok"

JOBS = [Job("from_file", agent=agent, schedule="@hourly")]
"""


def test_a_child_reads_the_file_jobs_while_the_ledger_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = tmp_path / "beat_schedule.py"
    schedule.write_text(textwrap.dedent(SCHEDULE))
    settings = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/gone",
                        schedule_path=schedule)  # fmt: skip
    engine = sqlalchemy.create_engine(settings.database_url,
                                      connect_args={"connect_timeout": 2})  # fmt: skip

    class Down:  # the runtime parts the loaders read; a database nobody listens for
        def __init__(self) -> None:
            self.settings, self.declarations = settings, None
            self.file_jobs: list[object] = []
            self.ledger = type("L", (), {"engine": engine})()

    runtime = Down()
    specs = []
    with caplog.at_level(logging.WARNING, "agentcron.children"):
        for loader in executor_loaders():
            specs += loader(runtime)  # type: ignore[arg-type]
    assert [spec.name for spec in specs] == ["from_file"]
    assert "the schedule file's are used" in caplog.text


def test_lost_children_are_counted_per_run() -> None:
    mode = ChildMode(pool=None, call_soon=lambda *a: None)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    one = RunContext(job="j", task="t", config={}, window_key="j@1", window_start=start,
                     slot=start)  # fmt: skip
    other = RunContext(job="j", task="t", config={}, window_key="j@2", window_start=start,
                       slot=start)  # fmt: skip
    assert [mode._count_lost(one), mode._count_lost(one), mode._count_lost(other)] == [1, 2, 1]
    assert str(WorkerLost(2)) == "worker lost 2 times"
    del one
    assert len(mode._lost) == 1  # forgotten with its run's context
