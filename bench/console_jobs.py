"""Server-side time of the console's Jobs page with N jobs, 30 windows each.

    .venv/bin/python -m bench.console_jobs --jobs 10000
    .venv/bin/python -m bench.console_jobs --jobs 10000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test_console

The jobs are runtime schedules (the schedules table); every job has 30 windows in the ledger.
Requests go through the whole ASGI app in this process (Starlette's TestClient: login
middleware, route, ledger queries, template), so the time is the server's, without a network.
The first request builds the job catalogue (once per change of the schedules table) and is
reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from starlette.testclient import TestClient

from agentcron.clock import FrozenClock
from agentcron.console import create_app
from agentcron.jobs import Job
from agentcron.ledger.records import NewWindow
from agentcron.ledger.schedules import ScheduleStore
from agentcron.ledger.store import Ledger
from agentcron.runtime import Runtime
from agentcron.settings import Settings
from agentcron.spend.store import SpendStore
from agentcron.spend.usage import ModelUsage
from agentcron.windows import window_key

TOKEN = "bench-token-0123456789"
SCHEDULES = ("*/5 * * * *", "0 * * * *", "30 6 * * *", "every 15 minutes", "0 9 * * mon-fri")


def populate(ledger: Ledger, clock: FrozenClock, jobs: int, windows: int) -> None:
    """``jobs`` runtime schedules, ``windows`` scheduled windows and a usage row of each."""
    store = ScheduleStore(ledger.engine, clock)
    names = [f"job_{i:05d}" for i in range(jobs)]
    for start in range(0, jobs, 2000):
        store.upsert([Job(name, agent="examples.market:analyse",
                          schedule=SCHEDULES[i % len(SCHEDULES)])
                      for i, name in enumerate(names[start:start + 2000], start)], "api")  # fmt: skip
    now = clock.now().replace(minute=0, second=0, microsecond=0)
    batch: list[NewWindow] = []
    for name in names:
        for w in range(windows):
            at = now - timedelta(hours=w + 1)
            batch.append(NewWindow(name, at, window_key(name, at), at))
        if len(batch) >= 20_000:
            ledger.record_scheduled(batch)
            batch = []
    ledger.record_scheduled(batch)
    spend = SpendStore(ledger.engine)
    for index, name in enumerate(names):  # a few usage rows per job: the "spend today" column
        at = now - timedelta(hours=index % 30)
        spend.record(name, at, window_key(name, at), 1,
                     {"gpt-x": ModelUsage(1000, 200, 0.01, 1)}, at)  # fmt: skip


def timed(client: TestClient, path: str, rounds: int) -> list[float]:
    """Milliseconds per request of ``path``."""
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path)
        took.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:200]
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="console-bench-"))
    url = args.database or f"sqlite:///{folder / 'ledger.sqlite'}"
    clock = FrozenClock("2026-03-17T12:00:00Z")
    ledger = Ledger(url, clock)
    ledger.upgrade()
    started = time.perf_counter()
    populate(ledger, clock, args.jobs, args.windows)
    print(f"populated {args.jobs} jobs x {args.windows} windows in {time.perf_counter() - started:.1f}s")
    settings = Settings(data_dir=folder, schedule_path=folder / "none.py", database_url=url,
                        agent_modules="examples.market")
    runtime = Runtime(settings, clock, ledger=ledger)
    client = TestClient(create_app(runtime, TOKEN), follow_redirects=False)
    client.get(f"/?token={TOKEN}")
    first = timed(client, "/", 1)[0]
    print(f"first request (builds the catalogue of {args.jobs} jobs): {first:.0f} ms")
    for path in ("/", f"/?page={args.jobs // 100}", "/?sort=next", "/?q=job_0999", "/?sort=queue&page=3"):
        took = timed(client, path, args.rounds)
        print(f"{path:<24} median {statistics.median(took):6.1f} ms   max {max(took):6.1f} ms")


if __name__ == "__main__":
    main()
