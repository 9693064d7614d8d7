"""The watchdog re-publishes rows left claimed/running by a run that is gone (scenario 6).

FrozenClock, SQLite ledger, MemoryLeaseStore and an in-memory publisher (see
test_watch_watchdog.py). A "run" here is what the guard leaves behind: the lease it runs under
(the job's name; the window key for overlap="allow") and the row claimed under that lease's token.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agentcron.clock import FrozenClock
from agentcron.jobs import JobSpec
from agentcron.leases.base import Lease
from agentcron.ledger.records import NewWindow, RunState
from agentcron.watch.watchdog import WatchdogConfig
from agentcron.windows import window_key
from tests.unit.test_watch_watchdog import SLOT, Queued, Rig, daily

TTL = 5.0
KEY = "daily@2026-03-17T06:00:00Z"


def start_run(rig: Rig, spec: JobSpec, window: NewWindow, *, lease_name: str | None = None,
              running: bool = True) -> Lease:  # fmt: skip
    """What the guard does before the agent runs: take the lease, claim the row under it."""
    rig.ledger.record_scheduled([window])
    lease = rig.leases.acquire(lease_name or spec.name, "worker-1", TTL)
    assert lease is not None
    claim = rig.ledger.claim(window, lease.token, "worker-1", 3, running=running)
    assert claim.record.state is (RunState.RUNNING if running else RunState.CLAIMED)
    return lease


def test_stranded_running_row_is_republished_once_with_the_next_attempt(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    queued = Queued()
    rig = Rig(tmp_path, clock, queued)
    spec = daily()
    start_run(rig, spec, rig.window(spec))  # its run dies: the lease is never renewed
    clock.advance(60)
    report = rig.watchdog.check([spec])
    assert report.republished == [KEY]
    [out] = rig.publisher.sent
    assert (out.message.window_key, out.message.trigger, out.message.attempt, out.queue) == (
        KEY, "schedule", 2, "agentcron.sync")
    queued.keys.add(KEY)  # the message waits on the broker now
    clock.advance(60)
    assert rig.watchdog.check([spec]).republished == []
    assert len(rig.publisher.sent) == 1


def test_stranded_claimed_manual_window_off_the_schedule_is_republished(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = daily(overlap="allow")
    start = SLOT + timedelta(minutes=17)  # a manual window: no slot of the schedule
    key = window_key("daily", start)
    window = NewWindow("daily", start, key, start, "manual")
    start_run(rig, spec, window, lease_name=key, running=False)
    clock.advance(60)
    assert rig.watchdog.check([spec]).republished == [key]
    assert rig.publisher.sent[0].message.trigger == "manual"


def test_running_row_whose_token_holds_the_lease_is_untouched(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = daily()
    lease = start_run(rig, spec, rig.window(spec))
    for _ in range(2000):  # an hour-long run renews its lease every TTL/3
        clock.advance(TTL / 3)
        assert rig.leases.renew(lease, TTL)
    assert rig.watchdog.check([spec]).republished == []
    assert rig.publisher.sent == []


def test_row_whose_lease_another_token_holds_is_stranded(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = daily()
    start_run(rig, spec, rig.window(spec))
    clock.advance(TTL + 1)
    assert rig.leases.acquire("daily", "another-window", 3600) is not None  # the job's lease
    clock.advance(60)
    assert rig.watchdog.check([spec]).republished == [KEY]


def test_young_stranded_row_is_untouched(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued(), WatchdogConfig(min_age=30))
    spec = daily()
    start_run(rig, spec, rig.window(spec))
    clock.advance(TTL + 1)  # the lease is gone, but the row was written 6 s ago
    assert rig.watchdog.check([spec]).republished == []
    clock.advance(30 - TTL - 1)
    assert rig.watchdog.check([spec]).republished == [KEY]


def test_blind_watchdog_republishes_a_stranded_row_once_per_threshold(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, None, WatchdogConfig(republish_after=600))
    spec = daily()
    start_run(rig, spec, rig.window(spec))
    clock.advance(599)  # no broker view: the message may still be in kombu's visibility wait
    assert rig.watchdog.check([spec]).republished == []
    clock.advance(1)
    assert rig.watchdog.check([spec]).republished == [KEY]
    clock.advance(60)
    assert rig.watchdog.check([spec]).republished == []  # not on every pass
    clock.advance(600)
    assert rig.watchdog.check([spec]).republished == [KEY]


def test_row_taken_over_since_is_not_republished(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = daily()
    window = rig.window(spec)
    start_run(rig, spec, window)
    clock.advance(60)

    class TakeOverWhileLooking(Queued):
        def window_keys(self) -> set[str] | None:  # a redelivery claims it meanwhile
            lease = rig.leases.acquire("daily", "worker-2", TTL)
            assert lease is not None
            rig.ledger.claim(window, lease.token, "worker-2", 3, running=True)
            return set()

    rig.watchdog.queued = TakeOverWhileLooking()
    assert rig.watchdog.check([spec]).republished == []


def test_terminal_rows_and_disabled_jobs_are_not_rescued(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    done, off = daily("done"), daily("off")
    lease = start_run(rig, done, rig.window(done))
    rig.ledger.complete("done", SLOT, lease.token, RunState.SUCCEEDED)
    start_run(rig, off, rig.window(off))
    clock.advance(60)
    assert rig.watchdog.check([done, daily("off", enabled=False)]).republished == []
