"""`agentcron next` and `agentcron validate`, including the issue's acceptance lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcron.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["30 1 * * *", "--tz", "America/New_York", "--after", "2026-10-31T12:00:00Z", "-n", "3"],
      ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]),
     (["30 2 * * *", "--tz", "America/New_York", "--after", "2026-03-07T17:00:00Z", "-n", "2"],
      ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
     (["*/30m", "--after", "2026-01-01T00:10:00Z", "-n", "2"],
      ["2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"]),
     (["at:2026-03-17T06:00:00Z", "--after", "2026-01-01T00:00:00Z", "-n", "5"],
      ["2026-03-17T06:00:00Z"])],
)  # fmt: skip
def test_next_json(args: list[str], expected: list[str]) -> None:
    result = CliRunner().invoke(main, ["next", *args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected


def test_next_exact_output_of_the_acceptance_line() -> None:
    result = CliRunner().invoke(main, ["next", "30 1 * * *", "--tz", "America/New_York",
                                       "--after", "2026-10-31T12:00:00Z", "-n", "3", "--json"])
    assert result.output.strip() == (
        '["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"]'
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["*/0 * * * *"], "*/0"), (["0 6 * * *", "--tz", "Nope/Zone"], "Nope/Zone"),
     (["0 6 * * *", "--after", "yesterday"], "yesterday")],
)  # fmt: skip
def test_next_bad_input_exits_2(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(main, ["next", *args])
    assert result.exit_code == 2 and needle in result.output


def test_validate_shipped_schedule() -> None:
    result = CliRunner().invoke(main, ["validate", str(ROOT / "beat_schedule.py")])
    assert result.exit_code == 0, result.output
    assert "5 job(s) valid" in result.output and "Monday through Friday" in result.output


def test_validate_reports_every_error_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "beat_schedule.py"
    path.write_text(
        "from agentcron import Job\n"
        "JOBS = [Job('x', agent='examples.logscan:scan', schedule='61 * * * *'),\n"
        "        Job('y', agent='examples.logscan:scan', schedule='@daily', overlap='meh')]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "agentcron.cli", "validate", str(path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "'x'" in proc.stderr and "minute" in proc.stderr and "61" in proc.stderr
    assert "'y'" in proc.stderr and "meh" in proc.stderr


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert f"```sh\n{command}\n```" in readme
    first_section = readme.split("\n## ")[1]
    assert first_section.startswith("Set up") and first_section.count("```sh") == 2
