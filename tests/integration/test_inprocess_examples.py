"""The in-process examples against real processes: a uvicorn server and the plain script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCRON_")}
    env.update(extra, PYTHONPATH=str(ROOT))
    return env


def get_json(url: str) -> Any:
    try:
        return httpx.get(url, timeout=2).json()
    except httpx.HTTPError:
        return None


@pytest.mark.integration
def test_fastapi_app_starts_in_the_lifespan_and_stops_on_shutdown(tmp_path: Path) -> None:
    port = free_port()
    ledger = tmp_path / "ledger.sqlite"
    env = env_with(AGENTCRON_INPROCESS_SCHEDULE="*/1s", AGENTCRON_INPROCESS_LEDGER="1",
                   AGENTCRON_DATABASE_URL=f"sqlite:///{ledger}",
                   AGENTCRON_DATA_DIR=str(tmp_path))  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: (get_json(f"{base}/stats") or {}).get("successful_executions", 0) >= 2,
                 timeout=30, what="two successful runs through uvicorn")  # fmt: skip
        stats = get_json(f"{base}/stats")
        report = get_json(f"{base}/report")
    finally:
        server.send_signal(signal.SIGINT)
        _out, err = server.communicate(timeout=30)
    assert stats["is_running"] is True and stats["failed_executions"] == 0
    assert stats["last_window_key"].startswith("fastapi_log_scan@")
    assert report["window"].startswith("fastapi_log_scan@") and report["anomalies"]
    assert server.returncode == 0, err[-3000:]
    assert "in-process scheduler stopped" in err and "Application shutdown complete" in err
    shown = subprocess.run([str(Path(sys.executable).parent / "agentcron"), "runs", "--json",
                            "--job", "fastapi_log_scan"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    rows = json.loads(shown.stdout)
    assert len([r for r in rows if r["state"] == "succeeded"]) >= 2


@pytest.mark.integration
def test_plain_script_runs_windows_and_prints_stats() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.inprocess_script", "--schedule", "*/1s", "--runs", "2"],
        cwd=ROOT, env=env_with(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("script_log_scan@") and "anomalies" in lines[0]
    stats = json.loads("\n".join(lines[2:]))
    assert stats["successful_executions"] >= 2 and stats["is_running"] is False
