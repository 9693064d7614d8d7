"""The beat loop with a FrozenClock, a SQLite ledger and an in-memory publisher."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from agentcron.agents import DeclaredModules
from agentcron.beat.leader import LeaderElection
from agentcron.beat.service import BeatConfig, BeatService
from agentcron.beat.sources import SpecSource
from agentcron.clock import FrozenClock
from agentcron.emission.emitter import Emitter
from agentcron.emission.publisher import Outgoing
from agentcron.jobs import Job
from agentcron.leases.memory import MemoryLeaseStore
from agentcron.ledger.records import RunState
from agentcron.ledger.schedules import ScheduleStore
from agentcron.ledger.store import Ledger
from agentcron.settings import Settings

AGENT = "tests.unit.test_beat_service:agent"
TESTS = DeclaredModules(("tests",))


def agent(ctx: object) -> str:
    return "ok"


class MemoryPublisher:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.down = False

    def publish(self, batch: Sequence[Outgoing]) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.sent.extend(batch)

    def window_keys(self) -> list[str]:
        return [o.message.window_key for o in self.sent]


class Rig:
    def __init__(self, tmp: Path, clock: FrozenClock, jobs: list[Job], *, shared: Ledger | None = None,
                 leases: MemoryLeaseStore | None = None) -> None:  # fmt: skip
        self.clock = clock
        self.ledger = shared or Ledger(f"sqlite:///{tmp / 'ledger.sqlite'}", clock)
        self.store = ScheduleStore(self.ledger.engine, clock)
        self.publisher = MemoryPublisher()
        leader = LeaderElection(leases, clock, ttl=6) if leases is not None else None
        self.beat = BeatService(
            SpecSource(self.store, jobs, settings=Settings(agent_modules="tests.unit")),
            Emitter(self.ledger, self.publisher, clock), clock,
            engine=self.ledger.engine, leader=leader,
            config=BeatConfig(max_interval=1.0, refresh_interval=2.0),
        )  # fmt: skip

    def run(self, seconds: float, step: float = 0.5) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            self.beat.tick()
            self.clock.advance(step)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock("2026-03-17T06:00:00.200Z")


def test_records_before_publishing_and_publishes_each_window_once(tmp_path: Path,
                                                                  clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [Job("tick", agent=AGENT, schedule="*/2s")])
    rig.run(6.5)
    assert rig.publisher.window_keys() == [f"tick@2026-03-17T06:00:0{s}Z" for s in (2, 4, 6)]
    rows = rig.ledger.list_runs(job="tick")
    assert {r.window_key for r in rows} == set(rig.publisher.window_keys())
    assert all(r.state is RunState.SCHEDULED for r in rows)
    first = rig.publisher.sent[0]
    assert first.task == "agentcron.run_sync" and first.queue == "agentcron.sync"


def test_two_beats_on_one_ledger_publish_each_window_once(tmp_path: Path,
                                                         clock: FrozenClock) -> None:
    jobs = [Job("tick", agent=AGENT, schedule="*/1s")]
    a = Rig(tmp_path, clock, jobs)
    b = Rig(tmp_path, clock, jobs, shared=a.ledger)  # no leader lease: both emit
    for _ in range(10):
        a.beat.tick()
        b.beat.tick()
        clock.advance(0.5)
    keys = a.publisher.window_keys() + b.publisher.window_keys()
    assert len(keys) == len(set(keys)) == 4  # slots 06:00:01..04 (ticks up to 04.7)
    assert b.beat.emitter.stats.deduplicated + a.beat.emitter.stats.deduplicated == 4


def test_only_the_leader_emits_and_standby_takes_over(tmp_path: Path, clock: FrozenClock) -> None:
    jobs = [Job("tick", agent=AGENT, schedule="*/1s")]
    leases = MemoryLeaseStore(clock)
    a = Rig(tmp_path, clock, jobs, leases=leases)
    b = Rig(tmp_path, clock, jobs, shared=a.ledger, leases=leases)
    for _ in range(6):
        a.beat.tick()
        b.beat.tick()
        clock.advance(0.5)
    assert len(a.publisher.sent) == 2 and b.publisher.sent == []
    clock.advance(7)  # a is paused past the TTL; b takes over and catches up
    b.run(3)
    a.beat.tick()  # a resumes, must step down before dispatching
    assert not a.beat.active and len(a.publisher.sent) == 2
    fresh = [k for k in b.publisher.window_keys() if k not in a.publisher.window_keys()]
    assert len(fresh) == len(set(fresh)) >= 3
    assert b.beat.active


def test_broker_down_leaves_rows_scheduled_then_republishes(tmp_path: Path,
                                                           clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [Job("tick", agent=AGENT, schedule="*/2s")])
    rig.run(2.5)
    rig.publisher.down = True
    rig.run(4)
    assert rig.publisher.window_keys() == ["tick@2026-03-17T06:00:02Z"]
    pending = rig.ledger.pending(clock.now())
    assert {r.window_key for r in pending} >= {"tick@2026-03-17T06:00:04Z",
                                               "tick@2026-03-17T06:00:06Z"}  # fmt: skip
    rig.publisher.down = False
    rig.run(1)
    keys = rig.publisher.window_keys()
    assert {"tick@2026-03-17T06:00:04Z", "tick@2026-03-17T06:00:06Z"} <= set(keys)
    assert rig.beat.emitter.stats.publish_failures >= 1


def test_restart_catches_up_latest_and_records_older_missed(tmp_path: Path,
                                                           clock: FrozenClock) -> None:
    jobs = [Job("tick", agent=AGENT, schedule="*/2s", catchup_window=5, coalesce="latest")]
    first = Rig(tmp_path, clock, jobs)
    first.run(2.5)
    clock.advance(12)  # beat down from 06:00:02.7 to 06:00:14.7
    second = Rig(tmp_path, clock, jobs, shared=first.ledger)
    second.beat.tick()
    catchup = [o.message for o in second.publisher.sent if o.message.trigger == "catchup"]
    assert [m.window_key for m in catchup] == ["tick@2026-03-17T06:00:14Z"]
    # the taking-over beat also re-sends rows still 'scheduled' (workers dedupe them)
    assert set(second.publisher.window_keys()) == {"tick@2026-03-17T06:00:02Z",
                                            "tick@2026-03-17T06:00:14Z"}  # fmt: skip
    missed = {r.window_key: r.error_message for r in first.ledger.list_runs(state="missed")}
    assert set(missed) == {f"tick@2026-03-17T06:00:{s:02d}Z" for s in (4, 6, 8, 10, 12)}
    assert missed["tick@2026-03-17T06:00:04Z"] == "scheduler down"
    assert "coalesced" in (missed["tick@2026-03-17T06:00:12Z"] or "")


def test_restart_without_downtime_does_not_duplicate(tmp_path: Path, clock: FrozenClock) -> None:
    jobs = [Job("tick", agent=AGENT, schedule="*/2s")]
    first = Rig(tmp_path, clock, jobs)
    first.run(2.5)
    second = Rig(tmp_path, clock, jobs, shared=first.ledger)
    second.run(2)
    keys = first.publisher.window_keys() + [
        k for k in second.publisher.window_keys() if k not in first.publisher.window_keys()
    ]
    assert keys == ["tick@2026-03-17T06:00:02Z", "tick@2026-03-17T06:00:04Z"]
    assert second.beat.emitter.stats.recorded == 1


def test_dynamic_add_pause_resume_remove_without_restart(tmp_path: Path,
                                                        clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [])
    rig.run(1)
    rig.store.add(Job("dyn", agent=AGENT, schedule="*/1s"), declared=TESTS)
    rig.run(3)
    assert len(rig.publisher.sent) >= 1
    rig.store.pause("dyn")
    rig.run(2.5)  # the change is seen within refresh_interval
    count = len(rig.publisher.sent)
    rig.run(4)
    assert len(rig.publisher.sent) == count
    rig.store.resume("dyn")
    rig.run(3)
    assert len(rig.publisher.sent) > count
    rig.store.remove("dyn")
    rig.run(2.5)
    count = len(rig.publisher.sent)
    rig.run(3)
    assert len(rig.publisher.sent) == count
    assert "dyn" not in rig.beat.planner


def test_no_refresh_query_between_polls(tmp_path: Path, clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [Job("tick", agent=AGENT, schedule="*/1s")])
    calls = []
    original = rig.store.revision
    rig.store.revision = lambda: calls.append(1) or original()  # type: ignore[method-assign,func-returns-value]
    rig.run(10, step=0.1)
    assert 4 <= len(calls) <= 6  # once per refresh_interval, not once per tick


def test_ledger_down_keeps_due_windows_for_the_next_tick(tmp_path: Path,
                                                         clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [Job("tick", agent=AGENT, schedule="*/2s")])
    rig.beat.tick()
    real = rig.ledger.record_scheduled

    def broken(windows: object) -> list[str]:
        raise ConnectionError("db down")

    rig.ledger.record_scheduled = broken  # type: ignore[method-assign,assignment]
    clock.advance(2)
    rig.beat.tick()
    assert rig.publisher.sent == []
    rig.ledger.record_scheduled = real  # type: ignore[method-assign]
    rig.beat.tick()
    assert rig.publisher.window_keys() == ["tick@2026-03-17T06:00:02Z"]


def test_file_jobs_synced_removed_file_job_disabled_history_kept(tmp_path: Path,
                                                                 clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [Job("a", agent=AGENT, schedule="*/2s"),
                                Job("b", agent=AGENT, schedule="*/2s")])  # fmt: skip
    rig.run(2.5)
    rig.store.pause("b")
    again = Rig(tmp_path, clock, [Job("b", agent=AGENT, schedule="*/2s")], shared=rig.ledger)
    again.run(2.5)
    entries = {e.name: e for e in rig.store.entries()}
    assert not entries["a"].enabled and entries["a"].source == "file-removed"
    assert not entries["b"].enabled  # a runtime pause survives the restart
    assert again.publisher.sent == []
    assert rig.ledger.list_runs(job="a")  # history kept
    rig.store.sync_file([Job("a", agent=AGENT, schedule="*/2s")])
    assert rig.store.get("a") is not None and rig.store.get("a").enabled  # type: ignore[union-attr]


def test_bad_dynamic_definition_is_skipped_not_fatal(tmp_path: Path, clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [Job("tick", agent=AGENT, schedule="*/2s")])
    rig.run(1)
    rig.store.upsert([Job("bad", agent="nowhere.module:fn", schedule="*/1s")], "api")
    rig.run(3)
    assert "bad" in rig.beat.source.failed and "bad" not in rig.beat.planner
    assert any(k.startswith("tick@") for k in rig.publisher.window_keys())


def test_jobs_window_day_dedupes_slots_of_one_window(tmp_path: Path, clock: FrozenClock) -> None:
    rig = Rig(tmp_path, clock, [Job("d", agent=AGENT, schedule="*/1s", window="hour")])
    rig.run(3)
    assert rig.publisher.window_keys() == ["d@2026-03-17T06:00:00Z"]
    assert rig.beat.emitter.stats.deduplicated >= 1
    assert timedelta(0) == timedelta(0)


def test_restarting_with_the_same_file_does_not_move_the_revision(tmp_path: Path,
                                                                  clock: FrozenClock) -> None:
    jobs = [Job("a", agent=AGENT, schedule="*/2s"), Job("b", agent=AGENT, schedule="*/2s")]
    rig = Rig(tmp_path, clock, jobs)
    rig.run(1)
    revision = rig.store.revision()
    assert rig.store.sync_file(jobs) == revision  # a standby restarting: nothing re-read
    changed = [Job("a", agent=AGENT, schedule="*/4s"), jobs[1]]
    assert rig.store.sync_file(changed) > revision
    assert [e.name for e in rig.store.entries(since=revision + 1)] == ["a"]


def test_standby_keeps_specs_current_and_takes_over_with_them(tmp_path: Path,
                                                             clock: FrozenClock) -> None:
    leases = MemoryLeaseStore(clock)
    a = Rig(tmp_path, clock, [], leases=leases)
    b = Rig(tmp_path, clock, [], shared=a.ledger, leases=leases)
    a.beat.tick()
    b.beat.tick()
    a.store.add(Job("late", agent=AGENT, schedule="*/1s"), declared=TESTS)
    for _ in range(6):
        b.beat.tick()  # standby: polls the revision, plans nothing
        clock.advance(0.5)
    assert "late" in b.beat.source.specs and len(b.beat.planner) == 0
    clock.advance(7)  # a is gone past its TTL
    b.beat.tick()
    b.run(1.5)
    assert "late" in b.beat.planner
    assert any(k.startswith("late@") for k in b.publisher.window_keys())


def test_sync_file_stores_each_jobs_own_definition_when_jobs_share_their_fields(
        tmp_path: Path) -> None:  # fmt: skip
    """The file's jobs share one definition when their fields are the same objects (a schedule
    file's comprehension); a job with its own config or agent keeps its own."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.upgrade()
    store = ScheduleStore(ledger.engine)
    every = "* * * * *"
    jobs = [Job(f"j{i}", agent="examples.market:analyse", schedule=every) for i in range(3)]
    jobs += [Job("k", agent="examples.market:analyse", schedule=every, config={"n": 1}),
             Job("l", agent="examples.market:other", schedule=every, config={}),
             Job("m", agent="examples.market:analyse", schedule="@daily", config={"n": 2})]
    store.sync_file(jobs)
    stored = {e.name: e.definition for e in store.entries()}
    assert [stored[f"j{i}"]["config"] for i in range(3)] == [{}, {}, {}]
    assert stored["k"]["config"] == {"n": 1} and stored["m"]["config"] == {"n": 2}
    assert stored["l"]["agent"] == "examples.market:other" and stored["m"]["schedule"] == "@daily"
    revision = store.revision()
    assert store.sync_file(jobs) == revision  # unchanged: nothing rewritten
    jobs[4] = Job("l", agent="examples.market:analyse", schedule=every, config={"n": 3})
    assert store.sync_file(jobs) > revision  # one changed job is seen among shared ones
    assert {e.name: e.definition for e in store.entries()}["l"]["config"] == {"n": 3}
    ledger.close()


def test_entries_with_the_same_definition_do_not_share_their_dicts(tmp_path: Path) -> None:
    """entries() decodes each distinct definition once; every entry still gets its own copy."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.upgrade()
    store = ScheduleStore(ledger.engine)
    store.sync_file([Job(f"j{i}", agent="examples.market:analyse", schedule="@daily",
                         config={"tags": ["a"]}) for i in range(2)])  # fmt: skip
    first, second = store.entries()
    first.definition["config"]["tags"].append("b")
    first.definition["schedule"] = "@hourly"
    assert second.definition["config"] == {"tags": ["a"]}
    assert second.definition["schedule"] == "@daily"
    ledger.close()


def test_runtime_only_entries_leave_out_the_schedule_files_rows(tmp_path: Path) -> None:
    """What workers load (dynamic.load_specs) is read without the file's rows: a worker next to
    100,000 file jobs no longer reads them all at start."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.upgrade()
    store = ScheduleStore(ledger.engine)
    every = "* * * * *"
    store.sync_file([Job("f1", agent="examples.market:analyse", schedule=every),
                     Job("f2", agent="examples.market:analyse", schedule=every)])  # fmt: skip
    store.sync_file([Job("f1", agent="examples.market:analyse", schedule=every)])  # f2 left
    store.add(Job("api1", agent="examples.market:analyse", schedule=every),
              declared=DeclaredModules(("examples",)))  # fmt: skip
    assert [e.name for e in store.entries()] == ["api1", "f1", "f2"]
    assert [e.name for e in store.entries(runtime_only=True)] == ["api1"]
    ledger.close()
