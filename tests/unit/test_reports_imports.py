"""Each module of the reports and delivery feature imports on its own (no import circle)."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ["agentcron.reports.records", "agentcron.reports", "agentcron.ledger.outputs",
           "agentcron.delivery", "agentcron.delivery.outbox", "agentcron.delivery.sender",
           "agentcron.delivery.service", "agentcron.cli.reports", "agentcron.ledger.records",
           "agentcron.context", "agentcron.jobs"]  # fmt: skip


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
