"""``agentcron schedules`` and ``agentcron trigger`` on a SQLite ledger (no services)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcron.agents import DeclaredModules
from agentcron.cli import main
from agentcron.cli.trigger import manual_message, trigger
from agentcron.clock import FrozenClock
from agentcron.emission.publisher import Outgoing
from agentcron.jobs import Job, compile_job
from agentcron.ledger.records import NewWindow
from agentcron.ledger.schedules import ScheduleStore
from agentcron.ledger.store import Ledger

AGENT = "tests.unit.test_beat_cli:agent"


def agent(ctx: object) -> str:
    return "ok"


class Sent:
    def __init__(self) -> None:
        self.out: list[Outgoing] = []

    def publish(self, batch: Sequence[Outgoing]) -> None:
        self.out.extend(batch)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "beat_schedule.py").write_text("JOBS = []\n")
    return {"AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            "AGENTCRON_DATA_DIR": str(tmp_path), "AGENTCRON_AGENT_MODULES": "tests.unit, no",
            "AGENTCRON_SCHEDULE_PATH": str(tmp_path / "beat_schedule.py")}  # fmt: skip


def test_schedules_add_list_pause_resume_remove(env: dict[str, str]) -> None:
    runner = CliRunner()
    added = runner.invoke(main, ["schedules", "add", "dyn", "--agent", AGENT, "--schedule",
                                 "*/10s", "--jitter", "5", "--config", '{"k": 1}'], env=env)  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added dyn (sync -> agentcron.sync)" in added.output
    listed = runner.invoke(main, ["schedules", "list"], env=env)
    assert "dyn" in listed.output and "active" in listed.output
    assert runner.invoke(main, ["schedules", "pause", "dyn"], env=env).exit_code == 0
    assert "paused" in runner.invoke(main, ["schedules", "list"], env=env).output
    assert runner.invoke(main, ["schedules", "resume", "dyn"], env=env).exit_code == 0
    assert runner.invoke(main, ["schedules", "remove", "dyn"], env=env).exit_code == 0
    assert "no schedules" in runner.invoke(main, ["schedules", "list"], env=env).output
    missing = runner.invoke(main, ["schedules", "pause", "dyn"], env=env)
    assert missing.exit_code == 1 and "no schedule named" in missing.output


def test_schedules_add_rejects_bad_input_and_writes_nothing(env: dict[str, str]) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["schedules", "add", "x", "--agent", AGENT, "--schedule",
                               "61 * * * *"], env=env)  # fmt: skip
    assert bad.exit_code == 2 and "minute" in bad.output
    nope = runner.invoke(main, ["schedules", "add", "x", "--agent", "no.such:fn", "--schedule",
                                "1m"], env=env)  # fmt: skip
    assert nope.exit_code == 2 and "cannot import" in nope.output
    assert "no schedules" in runner.invoke(main, ["schedules", "list"], env=env).output


def test_dynamic_definition_round_trips(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    store = ScheduleStore(ledger.engine)
    job = Job("j", agent=AGENT, schedule="0 6 * * *", tz="Europe/Paris", jitter=5.0,
              window="day", on_success=agent, config={"a": [1, 2]})  # fmt: skip
    store.add(job, declared=DeclaredModules(("tests", agent.__module__)))
    entry = store.get("j")
    assert entry is not None
    again = entry.job()
    assert again.schedule == "0 6 * * *" and again.tz == "Europe/Paris" and again.window == "day"
    assert again.config == {"a": [1, 2]} and str(again.on_success).endswith("test_beat_cli:agent")
    assert compile_job(again).jitter.total_seconds() == 5


def test_trigger_dedupes_against_the_scheduled_window_unless_forced(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:07:30Z")
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}", clock)
    spec = compile_job(Job("j", agent=AGENT, schedule="*/5 * * * *"))
    sent = Sent()
    message = manual_message(spec, clock.now(), force=False)
    assert message.window_key == "j@2026-03-17T06:05:00Z"  # the window containing now
    start = datetime(2026, 3, 17, 6, 5, tzinfo=UTC)
    ledger.record_scheduled([NewWindow("j", start, message.window_key, start)])  # beat did
    text = trigger(spec, ledger, sent, clock, force=False)
    assert text.startswith("deduped") and sent.out == []
    forced = trigger(spec, ledger, sent, clock, force=True)
    assert "forced" in forced and len(sent.out) == 1
    assert sent.out[0].message.force and sent.out[0].message.trigger == "manual"


def test_trigger_of_a_fresh_window_records_then_sends(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T10:00:00Z")
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}", clock)
    spec = compile_job(Job("daily", agent=AGENT, schedule="0 6 * * *", window="day"))
    sent = Sent()
    assert trigger(spec, ledger, sent, clock, force=False).startswith("sent")
    row = ledger.get_by_key("daily@2026-03-17T00:00:00Z")
    assert row is not None and row.trigger == "manual"
    assert trigger(spec, ledger, sent, clock, force=False).startswith("deduped")
    assert len(sent.out) == 1
