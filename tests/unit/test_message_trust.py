"""Signing and admission of run messages (issue 13 item 7), without services."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from agentcron.admission import FUTURE_SKEW, admit, is_slot_window, window_problem
from agentcron.beat.fastpublish import RedisListPublisher, header_template
from agentcron.emission.publisher import CeleryPublisher, Outgoing
from agentcron.jobs import Job, JobSpec, compile_job
from agentcron.ledger.records import NewWindow
from agentcron.ledger.store import Ledger
from agentcron.messages import SYNC_TASK, RunMessage
from agentcron.signing import SIGNATURE_FIELD, signature, signature_problem, signed_kwargs
from agentcron.windows import window_key, window_start

KEY = "unit-test-key"
NOW = datetime(2026, 3, 17, 12, 0, tzinfo=UTC)


def agent(ctx: object) -> str:
    return "ok"


def spec(schedule: str = "0 6 * * *", window: str = "slot", tz: str = "UTC") -> JobSpec:
    return compile_job(Job("j", agent=agent, schedule=schedule, window=window, tz=tz))


def message(slot: datetime, window: str = "slot", tz: str = "UTC", trigger: str = "schedule",
            force: bool = False) -> RunMessage:  # fmt: skip
    start = window_start(slot, window, tz)
    return RunMessage("j", window_key("j", start), start, slot, trigger, 1, force)


def test_signature_covers_every_field_and_the_key() -> None:
    msg = message(datetime(2026, 3, 17, 6, tzinfo=UTC))
    signed = signed_kwargs(msg, KEY)
    assert signature_problem(signed, RunMessage.from_kwargs(signed), KEY) is None
    for field, value in (("force", True), ("attempt", 2), ("trigger", "manual"),
                         ("slot", "2026-03-18T06:00:00Z")):  # fmt: skip
        tampered = signed | {field: value}
        parsed = RunMessage.from_kwargs(tampered)
        assert signature_problem(tampered, parsed, KEY) == (
            "bad signature (forged or tampered message)"), field
    assert signature_problem(msg.to_kwargs(), msg, KEY) is not None
    assert signature_problem(signed, msg, "other") is not None
    assert signature_problem(msg.to_kwargs(), msg, "") is None  # no key: nothing to check
    assert signed_kwargs(msg, "") == msg.to_kwargs()


class Pipe:
    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def lpush(self, key: str, *values: str) -> None:
        self.sink.extend(values)

    def execute(self) -> None:
        return None


class Client:
    def __init__(self) -> None:
        self.pushed: list[str] = []

    def pipeline(self, transaction: bool = True) -> Pipe:
        return Pipe(self.pushed)


def test_both_beat_paths_sign_the_same_kwargs() -> None:
    app = Celery("t", broker="redis://127.0.0.1:1/0")
    msg = message(datetime(2026, 3, 17, 6, tzinfo=UTC), trigger="manual", force=True)
    client = Client()
    publisher = RedisListPublisher(client, header_template(app), signing_key=KEY)
    publisher.publish([Outgoing(SYNC_TASK, "agentcron.sync", msg)])
    window = NewWindow(msg.job, msg.window_start, msg.window_key, msg.slot, "schedule")
    publisher.publish_windows([(SYNC_TASK, "agentcron.sync", window)])
    bodies = [json.loads(base64.b64decode(json.loads(raw)["body"]))[1] for raw in client.pushed]
    assert bodies[0] == signed_kwargs(msg, KEY)
    first = RunMessage(msg.job, msg.window_key, msg.window_start, msg.slot)
    assert bodies[1] == signed_kwargs(first, KEY)
    assert bodies[1][SIGNATURE_FIELD] == signature(first, KEY)

    sent: list[dict[str, Any]] = []

    class App:
        def producer_or_acquire(self) -> Any:
            import contextlib

            class Producer:
                @contextlib.contextmanager
                def batch(self, size: int) -> Any:
                    yield

            return contextlib.nullcontext(Producer())

        def send_task(self, name: str, **options: Any) -> None:
            sent.append(options["kwargs"])

    CeleryPublisher(App(), signing_key=KEY).publish([Outgoing(SYNC_TASK, "q", msg)])
    assert sent == [signed_kwargs(msg, KEY)]


@pytest.mark.parametrize(
    ("schedule", "window", "tz", "slot", "expected"),
    [("0 6 * * *", "slot", "UTC", "2026-03-17T06:00:00Z", True),
     ("0 6 * * *", "slot", "UTC", "2026-03-17T06:17:00Z", False),
     ("0 6 * * *", "day", "UTC", "2026-03-17T06:00:00Z", True),
     ("0 6 * * *", "day", "UTC", "2026-03-17T00:00:00Z", True),  # the window's start
     ("0 6 * * mon", "day", "UTC", "2026-03-17T00:00:00Z", False),  # a Tuesday: no fire
     ("30 1 * * *", "slot", "America/New_York", "2026-11-01T05:30:00Z", True),
     ("30 1 * * *", "slot", "America/New_York", "2026-11-01T06:30:00Z", False),  # 2nd 01:30
     ("*/10s", "slot", "UTC", "2026-03-17T06:00:20Z", True),
     ("*/10s", "slot", "UTC", "2026-03-17T06:00:25Z", False)],
)  # fmt: skip
def test_slots_of_the_job(schedule: str, window: str, tz: str, slot: str, expected: bool) -> None:
    when = datetime.fromisoformat(slot.replace("Z", "+00:00"))
    assert is_slot_window(spec(schedule, window, tz), message(when, window, tz)) is expected


def test_a_window_key_that_disagrees_with_the_slot_is_not_a_slot_window() -> None:
    slot = datetime(2026, 3, 17, 6, tzinfo=UTC)
    other = slot - timedelta(days=1)
    moved = RunMessage("j", window_key("j", other), other, slot)
    assert not is_slot_window(spec(), moved)


def test_window_problem_falls_back_to_the_ledger(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    job = spec()
    off = message(datetime(2026, 3, 17, 6, 17, tzinfo=UTC))
    assert "is not a slot of job 'j'" in (window_problem(job, off, ledger, NOW) or "")
    manual = message(datetime(2026, 3, 17, 6, tzinfo=UTC), trigger="manual")
    assert "must be recorded" in (window_problem(job, manual, ledger, NOW) or "")
    ahead = message(datetime(2026, 3, 18, 6, tzinfo=UTC))
    assert "in the future" in (window_problem(job, ahead, ledger, NOW) or "")
    assert window_problem(job, ahead, ledger, ahead.slot - FUTURE_SKEW) is None
    ledger.record_scheduled([NewWindow("j", m.window_start, m.window_key, m.slot, m.trigger)
                             for m in (off, manual, ahead)])  # fmt: skip
    for msg in (off, manual, ahead):
        assert window_problem(job, msg, ledger, NOW) is None
    ledger.close()


def test_admit_refuses_through_one_function(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from agentcron import admission

    refused: list[str] = []
    real = admission.refuse_message
    monkeypatch.setattr(admission, "refuse_message",
                        lambda kwargs, reason: (refused.append(reason), real(kwargs, reason)))  # type: ignore[func-returns-value]

    class Runtime:
        settings = type("S", (), {"signing_key": KEY})()
        ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
        clock = type("C", (), {"now": staticmethod(lambda: NOW)})()

        def spec(self, name: str) -> JobSpec:
            if name != "j":
                raise KeyError(name)
            return spec()

    runtime = Runtime()
    good = message(datetime(2026, 3, 17, 6, tzinfo=UTC))
    assert admit(signed_kwargs(good, KEY), lambda: runtime) is not None  # type: ignore[arg-type,return-value]
    assert admit({"job": "j"}, lambda: runtime) is None  # type: ignore[arg-type,return-value]
    assert admit(good.to_kwargs(), lambda: runtime) is None  # type: ignore[arg-type,return-value]
    other = RunMessage("k", "k@2026-03-17T06:00:00Z", good.window_start, good.slot)
    assert admit(signed_kwargs(other, KEY), lambda: runtime) is None  # type: ignore[arg-type,return-value]
    assert [r.split(":")[0].split(" (")[0] for r in refused] == [
        "malformed run message", "unsigned message", "no job named 'k'"]
    assert KEY not in caplog.text and signature(good, KEY) not in caplog.text
    runtime.ledger.close()


def _flaky_runtime(tmp_path: Path, failures: int) -> Any:
    from sqlalchemy.exc import OperationalError

    from agentcron.clock import FrozenClock
    from agentcron.settings import Settings

    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    off = message(datetime(2026, 3, 17, 6, 17, tzinfo=UTC))
    ledger.record_scheduled([NewWindow("j", off.window_start, off.window_key, off.slot)])
    calls = {"n": 0}
    get, get_many = ledger.get, ledger.get_many

    def down(real: Any) -> Any:
        def call(*args: Any) -> Any:
            calls["n"] += 1
            if calls["n"] <= failures:
                raise OperationalError("select", {}, ConnectionError("database down"))
            return real(*args)
        return call

    ledger.get, ledger.get_many = down(get), down(get_many)  # type: ignore[method-assign]

    class Runtime:
        settings = Settings(visibility_timeout=60)
        clock = FrozenClock(NOW)

        def spec(self, name: str) -> JobSpec:
            return spec()

    runtime = Runtime()
    runtime.ledger = ledger  # type: ignore[attr-defined]
    return runtime, off


def test_admission_waits_for_an_unreachable_ledger(tmp_path: Path) -> None:
    runtime, off = _flaky_runtime(tmp_path, failures=2)
    admitted = admit(off.to_kwargs(), lambda: runtime)
    assert admitted is not None and not admitted.pending
    assert len(runtime.clock.slept) == 2


async def test_async_admission_waits_for_an_unreachable_ledger(tmp_path: Path) -> None:
    from agentcron.admission import confirm_async

    runtime, off = _flaky_runtime(tmp_path, failures=2)
    admitted = admit(off.to_kwargs(), lambda: runtime, ask_ledger=False)
    assert admitted is not None and admitted.pending
    assert await confirm_async(admitted) is not None
    unrecorded = message(datetime(2026, 3, 17, 7, 17, tzinfo=UTC))
    pending = admit(unrecorded.to_kwargs(), lambda: runtime, ask_ledger=False)
    assert pending is not None and await confirm_async(pending) is None


async def test_a_force_runs_only_with_a_grant(tmp_path: Path) -> None:
    from agentcron.admission import confirm_async
    from agentcron.ledger.history import grant_force

    runtime, off = _flaky_runtime(tmp_path, failures=0)
    forced = RunMessage(off.job, off.window_key, off.window_start, off.slot, force=True)
    grant_force(runtime.ledger.engine, [forced.window_key], NOW, "trigger")
    first = admit(forced.to_kwargs(), lambda: runtime)
    assert first is not None and first.message.force  # the grant is used
    replay = admit(forced.to_kwargs(), lambda: runtime)
    assert replay is not None and not replay.message.force  # runs as not forced: deduped
    grant_force(runtime.ledger.engine, [forced.window_key], NOW, "backfill")
    pending = admit(forced.to_kwargs(), lambda: runtime, ask_ledger=False)
    assert pending is not None and pending.pending and pending.message.force
    confirmed = await confirm_async(pending)
    assert confirmed is not None and confirmed.message.force
    again = await confirm_async(admit(forced.to_kwargs(), lambda: runtime, ask_ledger=False))  # type: ignore[arg-type]
    assert again is not None and not again.message.force


def test_a_message_is_built_from_a_window_or_a_row_in_one_place(tmp_path: Path) -> None:
    start = datetime(2026, 3, 17, 6, 0, tzinfo=UTC)
    window = NewWindow("job", start, window_key("job", start), start + timedelta(minutes=5), "manual")
    message = RunMessage.from_record(window)
    assert message == RunMessage("job", "job@2026-03-17T06:00:00Z", start, window.slot, "manual", 1)
    assert RunMessage.from_kwargs(message.to_kwargs()) == message
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    ledger.record_scheduled([window])
    row = ledger.get("job", start)
    assert row is not None and row.attempt == 0 and row.next_attempt == 1
    again = RunMessage.from_record(row, row.next_attempt, trigger="watchdog", force=True)
    assert (again.trigger, again.attempt, again.force, again.slot) == ("watchdog", 1, True, window.slot)
    ledger.close()
