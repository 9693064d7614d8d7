"""The layer contracts of pyproject.toml (``[tool.importlinter]``) hold, and the checker does
catch an arrow that goes the wrong way (so a green run means something)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
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


def test_the_watch_layer_does_not_import_the_beat(tmp_path: Path) -> None:
    # The watchdog and backfill ask agentcron.emission (windows expected vs recorded), never the
    # beat: the contract is declared, kept (above), and the same contract aimed at what watch
    # does import breaks, so the checker sees watch's imports.
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert any(c["type"] == "forbidden" and c["source_modules"] == ["agentcron.watch"]
               and c["forbidden_modules"] == ["agentcron.beat"] for c in contracts)  # fmt: skip
    config = tmp_path / "watch.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["agentcron"]\n\n'
                      '[[tool.importlinter.contracts]]\nname = "aimed"\ntype = "forbidden"\n'
                      'source_modules = ["agentcron.watch"]\n'
                      'forbidden_modules = ["agentcron.emission"]\n')  # fmt: skip
    result = _lint(str(config))
    assert result.returncode != 0
    assert "agentcron.watch.watchdog -> agentcron.emission" in result.stdout
