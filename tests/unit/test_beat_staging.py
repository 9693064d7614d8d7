"""The beat takes an instant's windows off its heap ahead of the instant (staging) and records
and publishes them only at the instant; a job removed or changed meanwhile is not emitted from
what was staged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentcron.clock import FrozenClock
from agentcron.jobs import Job
from tests.unit.test_beat_service import AGENT, TESTS, Rig

INSTANT = datetime(2026, 3, 17, 6, 0, 10, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock("2026-03-17T06:00:00.200Z")


def test_windows_are_staged_ahead_and_published_at_the_instant(tmp_path: Path,
                                                                clock: FrozenClock) -> None:  # fmt: skip
    rig = Rig(tmp_path, clock, [Job("x", agent=AGENT, schedule="*/10s")])
    rig.beat.tick()
    clock.advance(8.9)  # 06:00:09.1: 0.9 s before the instant
    rig.beat.tick()
    assert rig.beat.planner.next_due() == datetime(2026, 3, 17, 6, 0, 20, tzinfo=UTC)  # staged
    assert rig.publisher.sent == [] and rig.ledger.list_runs(job="x") == []  # nothing yet
    assert 0 < rig.beat._sleep_time() <= 0.9  # wakes for the staged instant
    clock.advance(0.9)
    rig.beat.tick()
    assert rig.publisher.window_keys() == ["x@2026-03-17T06:00:10Z"]


def test_a_job_removed_after_staging_is_not_emitted(tmp_path: Path, clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [])
    rig.store.add(Job("gone", agent=AGENT, schedule="*/10s"), declared=TESTS)
    rig.store.add(Job("kept", agent=AGENT, schedule="*/10s"), declared=TESTS)
    rig.beat.tick()
    clock.advance(8.4)  # 06:00:08.6: 1.4 s before the instant
    rig.beat.tick()  # both staged
    assert rig.beat.planner.next_due() == datetime(2026, 3, 17, 6, 0, 20, tzinfo=UTC)
    rig.store.remove("gone")
    rig.store.add(Job("kept", agent=AGENT, schedule="*/20s"), declared=TESTS)  # changed
    clock.advance(2.0)  # past the instant; this tick reads the changes first
    rig.beat.tick()
    assert rig.publisher.window_keys() == []
    clock.advance(10.0)
    rig.beat.tick()
    assert rig.publisher.window_keys() == ["kept@2026-03-17T06:00:20Z"]


def test_a_beat_that_stands_by_forgets_what_it_staged(tmp_path: Path, clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [Job("x", agent=AGENT, schedule="*/10s")])
    rig.beat.tick()
    clock.advance(8.9)
    rig.beat.tick()
    rig.beat._deactivate()
    clock.advance(0.9)
    rig.beat.active = True  # as if it led again without reloading: nothing staged is left
    rig.beat.tick()
    assert rig.publisher.sent == []
