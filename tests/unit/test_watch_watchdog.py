"""The watchdog's judgement with a FrozenClock, a SQLite ledger and in-memory publisher/leases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from agentcron.alerts import Alert, Alerter
from agentcron.clock import FrozenClock
from agentcron.emission.publisher import Outgoing
from agentcron.instants import parse_instant
from agentcron.jobs import Job, JobSpec, compile_job
from agentcron.leases.memory import MemoryLeaseStore
from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.store import Ledger
from agentcron.watch.queued import message_window_key
from agentcron.watch.watchdog import Watchdog, WatchdogConfig, grace_of

SLOT = parse_instant("2026-03-17T06:00:00Z")


def agent(ctx: object) -> str:
    return "ok"


class MemoryPublisher:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def publish(self, batch: Sequence[Outgoing]) -> None:
        self.sent.extend(batch)

    def keys(self) -> list[str]:
        return [o.message.window_key for o in self.sent]


class RecordingAlerter(Alerter):
    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[Alert] = []

    def alert(self, alert: Alert, *, log_line: bool = True) -> None:
        self.alerts.append(alert)


class Queued:
    def __init__(self) -> None:
        self.keys: set[str] = set()

    def window_keys(self) -> set[str] | None:
        return set(self.keys)


def daily(name: str = "daily", **extra: object) -> JobSpec:
    return compile_job(Job(name, agent=agent, schedule="0 6 * * *", **extra))  # type: ignore[arg-type]


class Rig:
    def __init__(self, tmp: Path, clock: FrozenClock, queued: Queued | None = None,
                 config: WatchdogConfig | None = None) -> None:  # fmt: skip
        self.clock = clock
        self.ledger = Ledger(f"sqlite:///{tmp / 'ledger.sqlite'}", clock)
        self.publisher = MemoryPublisher()
        self.alerter = RecordingAlerter()
        self.leases = MemoryLeaseStore(clock)
        self.watchdog = Watchdog(self.ledger, self.publisher, clock, self.alerter, self.leases,
                                 config=config or WatchdogConfig(), queued=queued)  # fmt: skip

    def window(self, spec: JobSpec, slot: object = SLOT) -> NewWindow:
        from agentcron.emission.envelope import emission_for

        return emission_for(spec, slot).window  # type: ignore[arg-type]

    def ran_yesterday(self, spec: JobSpec) -> None:
        """The job has history: its windows are owed from then on."""
        yesterday = parse_instant("2026-03-16T06:00:00Z")
        self.ledger.mark_terminal(self.window(spec, yesterday), RunState.SUCCEEDED, "")


def test_window_without_a_row_is_recorded_and_enqueued(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:05:00Z")
    rig = Rig(tmp_path, clock)
    spec = daily()
    rig.ran_yesterday(spec)
    report = rig.watchdog.check([spec])
    assert report.enqueued == ["daily@2026-03-17T06:00:00Z"]
    assert rig.publisher.keys() == ["daily@2026-03-17T06:00:00Z"]
    assert rig.publisher.sent[0].message.trigger == "watchdog"
    row = rig.ledger.get("daily", SLOT)
    assert row is not None and row.state is RunState.SCHEDULED
    assert rig.watchdog.check([spec]).enqueued == []  # recorded now: not enqueued twice


def test_window_not_yet_ripe_is_left_to_the_beat(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:10Z")  # younger than min_age (30 s)
    rig = Rig(tmp_path, clock)
    rig.ran_yesterday(daily())
    assert rig.watchdog.check([daily()]).enqueued == []
    assert rig.publisher.sent == []


def test_a_job_without_history_owes_nothing(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:05:00Z")
    rig = Rig(tmp_path, clock)
    spec = daily()
    assert rig.watchdog.check([spec]).enqueued == []
    clock.set("2026-03-20T00:00:00Z")
    assert rig.watchdog.check([spec]).missed == [] and rig.alerter.alerts == []


def test_disabled_job_is_not_watched(tmp_path: Path) -> None:
    rig = Rig(tmp_path, FrozenClock("2026-03-17T06:05:00Z"))
    assert rig.watchdog.check([daily(enabled=False)]).jobs == 0
    assert rig.publisher.sent == []


def test_scheduled_row_on_the_broker_is_not_republished(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    queued = Queued()
    rig = Rig(tmp_path, clock, queued)
    spec = daily()
    rig.ledger.record_scheduled([rig.window(spec)])
    queued.keys.add("daily@2026-03-17T06:00:00Z")
    clock.advance(3600)
    assert rig.watchdog.check([spec]).republished == []


def test_scheduled_row_with_no_message_is_republished_with_the_next_attempt(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = daily()
    rig.ledger.record_scheduled([rig.window(spec)])
    clock.advance(10)
    assert rig.watchdog.check([spec]).republished == []  # too young: the beat may be publishing
    clock.advance(60)
    report = rig.watchdog.check([spec])
    assert report.republished == ["daily@2026-03-17T06:00:00Z"]
    message = rig.publisher.sent[0].message
    assert (message.trigger, message.attempt, rig.publisher.sent[0].queue) == (
        "schedule", 1, "agentcron.sync")


def test_scheduled_row_is_owed_after_its_catch_up_window_until_its_grace(tmp_path: Path) -> None:
    """A minutely job catches up one minute after downtime, but a window the beat recorded and
    the broker lost is sent again whenever the watchdog first sees it within the grace (a beat,
    a broker or the watchdog's own worker down longer than the catch-up window); seen only
    later, however much later, it is missed and alerted once (never left 'scheduled')."""
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = compile_job(Job("minutely", agent=agent, schedule="* * * * *"))  # type: ignore[arg-type]
    assert spec.catchup_window == timedelta(minutes=1)
    rig.ledger.record_scheduled([rig.window(spec)])
    clock.advance(600)
    assert rig.watchdog.check([spec]).republished == ["minutely@2026-03-17T06:00:00Z"]
    clock.set("2026-03-18T06:00:00Z")  # a day later, far past its grace (1 h 1 min)
    report = rig.watchdog.check([spec])
    key = "minutely@2026-03-17T06:00:00Z"  # (the minutes the lookback sees are missed too)
    assert report.republished == [] and key in report.missed
    assert [a.window for a in rig.alerter.alerts].count(key) == 1
    row = rig.ledger.get("minutely", SLOT)
    assert row is not None and row.state is RunState.MISSED
    rig.watchdog.check([spec])
    assert [a.window for a in rig.alerter.alerts].count(key) == 1


def test_rows_of_removed_jobs_do_not_crowd_out_owed_ones(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FrozenClock("2026-03-17T05:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    monkeypatch.setattr(Watchdog, "PENDING_LIMIT", 1)
    spec = daily()
    rig.ledger.record_scheduled([rig.window(daily("removed"))])  # older, of a job now gone
    clock.set("2026-03-17T06:00:00Z")
    rig.ledger.record_scheduled([rig.window(spec)])
    clock.advance(600)
    assert rig.watchdog.check([spec]).republished == ["daily@2026-03-17T06:00:00Z"]


def test_without_a_broker_view_rows_are_republished_after_the_threshold(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, None, WatchdogConfig(republish_after=600))
    spec = daily()
    rig.ledger.record_scheduled([rig.window(spec)])
    clock.advance(599)
    assert rig.watchdog.check([spec]).republished == []
    clock.advance(1)
    assert rig.watchdog.check([spec]).republished == ["daily@2026-03-17T06:00:00Z"]


def test_daily_grace_is_25_hours() -> None:
    assert grace_of(daily(), WatchdogConfig()) == timedelta(hours=25)
    assert grace_of(daily(), WatchdogConfig(grace=60)) == timedelta(seconds=60)


def test_missed_window_is_marked_and_alerted_exactly_once(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = daily()
    rig.ran_yesterday(spec)
    rig.ledger.record_scheduled([rig.window(spec)])
    clock.set("2026-03-18T06:59:59Z")  # 24 h 59 m 59 s after the slot
    report = rig.watchdog.check([spec])
    assert report.missed == [] and rig.alerter.alerts == []
    clock.set("2026-03-18T07:00:00Z")  # 25 h
    report = rig.watchdog.check([spec])
    assert report.missed == ["daily@2026-03-17T06:00:00Z"]
    row = rig.ledger.get("daily", SLOT)
    assert row is not None and row.state is RunState.MISSED
    assert row.error_message and "no successful run" in row.error_message
    assert [(a.job, a.window, a.state) for a in rig.alerter.alerts] == [
        ("daily", "daily@2026-03-17T06:00:00Z", "missed")]
    for _ in range(3):
        clock.advance(60)
        assert rig.watchdog.check([spec]).alerted == []
    assert len(rig.alerter.alerts) == 1


def test_two_watchdogs_alert_once_between_them(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-18T07:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = daily()
    rig.ran_yesterday(spec)
    other_alerter = RecordingAlerter()
    other = Watchdog(rig.ledger, rig.publisher, clock, other_alerter, rig.leases, queued=Queued())
    rig.watchdog.check([spec])
    other.check([spec])
    assert len(rig.alerter.alerts) + len(other_alerter.alerts) == 1


def test_window_missed_by_the_beat_is_alerted_once(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-18T07:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    spec = daily()
    rig.ledger.mark_terminal(rig.window(spec), RunState.MISSED, "scheduler down")
    rig.watchdog.check([spec])
    rig.watchdog.check([spec])
    assert [(a.window, a.reason) for a in rig.alerter.alerts] == [
        ("daily@2026-03-17T06:00:00Z", "scheduler down")]


def test_succeeded_or_failed_window_is_not_marked_missed(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-18T07:00:00Z")
    rig = Rig(tmp_path, clock, Queued())
    ok, bad = daily("ok"), daily("bad")
    rig.ledger.mark_terminal(rig.window(ok), RunState.SUCCEEDED, "")
    rig.ledger.mark_terminal(rig.window(bad), RunState.FAILED, "boom")
    report = rig.watchdog.check([ok, bad])
    assert report.missed == [] and rig.alerter.alerts == []


@pytest.mark.parametrize("encoding", ["base64", "utf-8"])
def test_window_key_is_read_from_a_kombu_message(encoding: str) -> None:
    import base64
    import json

    body = json.dumps([[], {"job": "daily", "window_key": "daily@2026-03-17T06:00:00Z"}, {}])
    payload = base64.b64encode(body.encode()).decode() if encoding == "base64" else body
    message = {"body": payload, "headers": {}, "properties": {"body_encoding": encoding}}
    assert message_window_key(json.dumps(message)) == "daily@2026-03-17T06:00:00Z"
    assert message_window_key(json.dumps([message, "", "agentcron.sync"])) == (
        "daily@2026-03-17T06:00:00Z")
    assert message_window_key(b"not json") is None
