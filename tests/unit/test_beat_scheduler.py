"""The Celery scheduler class in the embedded mode (SQLite broker, SQLite ledger, SQL leases)."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from agentcron.clock import FrozenClock
from agentcron.ledger.store import Ledger
from workers.beat import AgentcronScheduler


def test_scheduler_records_and_publishes_on_an_injected_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "embedagents.py").write_text("def tick(ctx):\n    return 'ok'\n")
    (tmp_path / "beat_schedule.py").write_text(
        "from agentcron import Job\n"
        "JOBS = [Job('tick', agent='embedagents:tick', schedule='*/2s')]\n"
    )
    for key in ("BROKER_URL", "DATABASE_URL", "REDIS_URL", "LEASE_BACKEND"):
        monkeypatch.delenv(f"AGENTCRON_{key}", raising=False)
    monkeypatch.setenv("AGENTCRON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGENTCRON_SCHEDULE_PATH", str(tmp_path / "beat_schedule.py"))
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    app = Celery("embedded", broker=broker)
    clock = FrozenClock("2026-03-17T06:00:00.500Z")

    class Frozen(AgentcronScheduler):
        pass

    Frozen.clock = clock
    scheduler = Frozen(app)
    assert scheduler.now() == clock.now()
    for _ in range(10):
        scheduler.tick()
        clock.advance(0.5)
    scheduler.close()
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}", clock)
    keys = sorted(r.window_key for r in ledger.list_runs(job="tick"))
    assert keys == ["tick@2026-03-17T06:00:02Z", "tick@2026-03-17T06:00:04Z"]
    assert scheduler.service is not None
    assert scheduler.service.emitter.stats.published == 2
    assert scheduler.service.leader is not None and scheduler.service.leader.elections == 1
