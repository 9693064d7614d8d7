"""Per-run log lines: ctx.log lines are kept per attempt, capped, and shown by `runs show`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from click.testing import CliRunner

from agentcron.cli import main
from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.ledger.views import LedgerViews
from agentcron.runlog import LineBuffer
from tests.unit.test_guard import World, make_spec


def test_buffer_keeps_the_newest_lines_within_both_caps() -> None:
    buffer = LineBuffer(max_lines=3, max_bytes=1000)
    for i in range(5):
        buffer.add(f"line {i}")
    assert buffer.lines() == ["[2 earlier line(s) dropped]", "line 2", "line 3", "line 4"]
    by_size = LineBuffer(max_lines=1000, max_bytes=25)
    for i in range(5):
        by_size.add(f"{i}" * 10)
    assert by_size.lines()[1:] == ["3" * 10, "4" * 10]


def test_guard_keeps_each_attempts_log_lines_and_runs_show_prints_them(
    tmp_path: Path, clock: FrozenClock
) -> None:
    world = World(tmp_path, clock)

    def agent(ctx: RunContext) -> str:
        ctx.log.info("fetched %d rows", 3)
        if ctx.attempt == 1:
            ctx.log.warning("first attempt fails")
            raise RuntimeError("flaky")
        ctx.log.debug("not kept: DEBUG is off")
        return "ok"

    spec = make_spec(agent, max_retries=2, backoff_base=0.01, backoff_cap=0.01)
    message = world.message(spec)
    outcome = world.guard().run_sync(spec, message)
    assert outcome.state is not None and outcome.state.value == "succeeded"
    logs = LedgerViews(world.ledger).run_log(message.window_key)
    assert [(e.attempt, e.lines) for e in logs] == [
        (2, ["INFO fetched 3 rows", "WARNING first attempt fails", "INFO fetched 3 rows"]),
    ]
    env = {"AGENTCRON_DATA_DIR": str(tmp_path),
           "AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}"}  # fmt: skip
    shown = CliRunner().invoke(main, ["runs", "show", message.window_key], env=env)
    assert shown.exit_code == 0, shown.output
    assert "log of attempt 2:" in shown.output and "INFO fetched 3 rows" in shown.output
    as_json = CliRunner().invoke(main, ["runs", "show", message.window_key, "--json"], env=env)
    assert json.loads(as_json.output)["log"][0]["lines"][1] == "WARNING first attempt fails"
    missing = CliRunner().invoke(main, ["runs", "show", "job@2001-01-01T00:00:00Z"], env=env)
    assert missing.exit_code == 1 and "no run" in missing.output
    bad = CliRunner().invoke(main, ["runs", "show", "no-at-sign\n"], env=env)
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_a_run_that_logs_nothing_stores_nothing(tmp_path: Path, clock: FrozenClock) -> None:
    world = World(tmp_path, clock)
    spec = make_spec(lambda ctx: "quiet")
    message = world.message(spec)
    world.guard().run_sync(spec, message)
    assert LedgerViews(world.ledger).run_log(message.window_key) == []


def test_kept_lines_never_hold_a_resolved_secret() -> None:
    from agentcron.runlog import RunLogAdapter
    from agentcron.secrets import SCRUBBER

    SCRUBBER.remember("sk-live-very-secret-value")
    adapter = RunLogAdapter(logging.getLogger("agentcron.agent.t"), {})
    adapter.info("calling with key %s", "sk-live-very-secret-value")
    assert all("sk-live-very-secret-value" not in line for line in adapter.buffer.lines())
