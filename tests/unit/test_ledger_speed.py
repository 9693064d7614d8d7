"""record_scheduled handles a whole beat tick of 10,000 windows well under a second (SQLite)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from agentcron.clock import FrozenClock
from agentcron.ledger import Ledger
from agentcron.ledger.records import NewWindow

START = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)


def test_record_scheduled_ten_thousand_windows_in_under_a_second(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'speed.sqlite'}", FrozenClock(START))
    windows = [NewWindow(f"job{i}", START, f"job{i}@2026-03-17T06:00:00Z", START)
               for i in range(10_000)]  # fmt: skip
    began = time.perf_counter()  # measures our own speed; no waiting on wall-clock time
    inserted = ledger.record_scheduled(windows)
    first = time.perf_counter() - began
    began = time.perf_counter()
    again = ledger.record_scheduled(windows)
    second = time.perf_counter() - began
    assert len(inserted) == 10_000 and again == []
    assert first < 1.0, f"10,000 new windows took {first:.2f}s"
    assert second < 1.0, f"10,000 known windows took {second:.2f}s"
    print(f"record_scheduled 10k: new {first:.3f}s, known {second:.3f}s")
    ledger.close()
