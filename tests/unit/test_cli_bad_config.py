"""Commands that need the runtime exit 2 naming a bad setting, never with a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agentcron.cli import main


@pytest.mark.parametrize(
    "args",
    [["status"], ["check"], ["trigger", "x"], ["jobs"],
     ["backfill", "x", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z"]],
)  # fmt: skip
def test_bad_setting_exits_2_naming_it(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, env={"AGENTCRON_LEASE_BACKEND": "bogus"})
    assert result.exit_code == 2, result.output
    assert "AGENTCRON_LEASE_BACKEND" in result.output and "bogus" in result.output
