"""agentcron.emission: windows expected vs recorded, the one service the watchdog asks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from agentcron.clock import FrozenClock
from agentcron.emission import ExpectedWindows, Outgoing, emission_for
from agentcron.emission.expected import MAX_SLOTS_PER_JOB
from agentcron.instants import parse_instant
from agentcron.jobs import Job, JobSpec, compile_job
from agentcron.ledger.memory import MemoryLedger

NOW = parse_instant("2026-03-17T06:00:00Z")


def agent(ctx: object) -> str:
    return "ok"


def spec(schedule: str, **extra: object) -> JobSpec:
    return compile_job(Job("j", agent=agent, schedule=schedule, **extra))  # type: ignore[arg-type]


class Publisher:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Outgoing] = []
        self.fail = fail

    def publish(self, batch: Sequence[Outgoing]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.extend(batch)


def service(publisher: Publisher) -> ExpectedWindows:
    clock = FrozenClock(NOW)
    return ExpectedWindows(MemoryLedger(clock), publisher, clock)


def test_between_gives_one_window_per_key_with_its_first_slot() -> None:
    hourly_in_days = spec("0 * * * *", window="day")
    windows = ExpectedWindows.between(hourly_in_days, NOW - timedelta(days=2), NOW)
    assert [w.window.window_key for w in windows] == ["j@2026-03-15T00:00:00Z",
                                                      "j@2026-03-16T00:00:00Z",
                                                      "j@2026-03-17T00:00:00Z"]  # fmt: skip
    assert windows[0].window.slot == parse_instant("2026-03-15T07:00:00Z")  # start excluded
    assert all(w.window.trigger == "watchdog" for w in windows)


def test_between_looks_at_no_more_than_max_slots() -> None:
    every_second = spec("every 1s")
    windows = ExpectedWindows.between(every_second, NOW - timedelta(hours=2), NOW)
    assert len(windows) == MAX_SLOTS_PER_JOB


def test_send_records_before_publishing_and_resend_publishes_again() -> None:
    publisher = Publisher()
    windows = service(publisher)
    job = spec("0 6 * * *")
    due = [emission_for(job, NOW, "watchdog")]
    assert windows.recorded(due) == {}
    assert windows.send(due)
    assert set(windows.recorded(due)) == {"j@2026-03-17T06:00:00Z"}
    assert not windows.send(due)  # recorded already: nothing published twice
    windows.resend([Outgoing("t", "q", due[0].message(2))])
    assert [o.message.attempt for o in publisher.sent] == [1, 2]


def test_send_says_when_the_broker_did_not_take_them() -> None:
    windows = service(Publisher(fail=True))
    due = [emission_for(spec("0 6 * * *"), NOW, "watchdog")]
    assert not windows.send(due)
    assert windows.recorded(due)["j@2026-03-17T06:00:00Z"].state.value == "scheduled"
