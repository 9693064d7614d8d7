"""Two processes running the same in-process schedule over one ledger run each window once.

The children are real subprocesses (``python -m tests.integration.test_inprocess_ledger``):
one drives ``AsyncAgentScheduler``, the other ``AgentScheduler``, both with ``database_url``.
Every execution appends one side-effect line; the oracle is that no window key appears twice
there, that every side effect has one ``succeeded`` ledger row, and ``agentcron runs`` shows them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from agentcron.clock import SYSTEM_CLOCK
from agentcron.context import RunContext
from agentcron.ledger.records import RunState
from agentcron.ledger.store import Ledger
from tests.services import wait_for

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE = "*/1s"


def child_env(database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCRON_")}
    env["AGENTCRON_DATABASE_URL"] = database_url
    if redis_url:
        env["AGENTCRON_REDIS_URL"] = redis_url
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_pair(tmp_path: Path, database_url: str, redis_url: str | None = None) -> None:
    name = f"inproc_{uuid.uuid4().hex[:8]}"
    effects, stop_file = tmp_path / "effects.txt", tmp_path / "stop"
    Ledger(database_url).upgrade()
    env = child_env(database_url, redis_url)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.test_inprocess_ledger", mode, database_url,
             name, str(effects), str(stop_file)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for mode in ("async", "sync")
    ]  # fmt: skip
    ledger = Ledger(database_url)
    try:
        wait_for(lambda: len(ledger.list_runs(job=name, state="succeeded", limit=100)) >= 4,
                 timeout=30, what="four succeeded windows")
    finally:
        stop_file.touch()
        outputs = [child.communicate(timeout=30) for child in children]
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-3000:]
    stats = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    lines = effects.read_text().split()
    keys = Counter(lines[0::2])
    assert keys and max(keys.values()) == 1, f"a window ran twice: {keys}"
    runs = ledger.list_runs(job=name, limit=500)
    succeeded = {r.window_key for r in runs if r.state is RunState.SUCCEEDED}
    assert set(keys) == succeeded
    # The oracle: one success per window, or one terminal row that says why (a 1 s schedule on a
    # loaded machine may start a window past its grace: 'missed', with the reason).
    others = [(r.window_key, r.state, r.error_message) for r in runs
              if r.state is not RunState.SUCCEEDED]  # fmt: skip
    assert all(state.terminal and reason for _key, state, reason in others), others
    assert sum(s["successful_executions"] for s in stats) == len(succeeded)
    assert sum(s["duplicate_windows"] for s in stats) >= 1  # both saw the same windows
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "agentcron"), "runs", "--job", name, "--json",
         "--limit", "500"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    listed = {row["window_key"] for row in json.loads(shown.stdout) if row["state"] == "succeeded"}
    assert listed == succeeded
    ledger.close()


@pytest.mark.integration
def test_two_processes_share_a_sqlite_ledger_and_run_each_window_once(tmp_path: Path) -> None:
    run_pair(tmp_path, f"sqlite:///{tmp_path / 'ledger.sqlite'}")


@pytest.mark.integration
def test_two_processes_share_postgres_and_redis_leases_run_each_window_once(
    tmp_path: Path, postgres_url: str, redis_client: object, redis_url: str
) -> None:
    run_pair(tmp_path, postgres_url, redis_url)


# -- the child process ---------------------------------------------------------------------------


def _agent(effects: str) -> object:
    def agent(ctx: RunContext) -> str:
        with open(effects, "a", encoding="utf-8") as out:
            out.write(f"{ctx.window_key} {os.getpid()}\n")
        SYSTEM_CLOCK.sleep(0.2)
        return "ok"

    return agent


def _child(mode: str, database_url: str, name: str, effects: str, stop_file: str) -> None:
    from agentcron.inprocess import AgentScheduler, AsyncAgentScheduler

    stop = Path(stop_file)
    if mode == "sync":
        scheduler = AgentScheduler(_agent(effects), "t", name=name, database_url=database_url)
        scheduler.start(SCHEDULE)
        while not stop.exists():
            SYSTEM_CLOCK.sleep(0.05)
        stats = scheduler.stop(timeout=10)
    else:

        async def main() -> dict[str, object]:
            scheduler = AsyncAgentScheduler(_agent(effects), "t", name=name,
                                            database_url=database_url)
            await scheduler.start(SCHEDULE)
            while not os.path.exists(stop_file):  # noqa: ASYNC240 - a cheap stat, test child
                await SYSTEM_CLOCK.asleep(0.05)
            return await scheduler.stop(timeout=10)

        stats = asyncio.run(main())
    print(json.dumps(stats, default=str), flush=True)


if __name__ == "__main__":
    _child(*sys.argv[1:6])
