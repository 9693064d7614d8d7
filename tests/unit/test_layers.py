"""The layer contracts of pyproject.toml (``[tool.importlinter]``) hold, and the checker does
catch an arrow that goes the wrong way (so a green run means something)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_every_layer_contract_is_kept() -> None:
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    # agentcron.messages imports agentcron.windows: declaring messages the lower layer must fail.
    config = tmp_path / "reversed.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["agentcron"]\n\n'
                      '[[tool.importlinter.contracts]]\nname = "reversed"\ntype = "layers"\n'
                      'layers = ["agentcron.windows", "agentcron.messages"]\n')  # fmt: skip
    result = _lint(str(config))
    assert result.returncode != 0
    assert "agentcron.messages -> agentcron.windows" in result.stdout
