"""Alerts, backfill, heartbeats, metrics and status logic (no services)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agentcron.alerts import Alert, Alerter, WebhookNotifier, alerter_from_settings, ping_url, safe_target
from agentcron.clock import FrozenClock
from agentcron.errors import ConfigError
from agentcron.guard import Outcome
from agentcron.instants import parse_instant
from agentcron.ledger.records import RunState
from agentcron.messages import RunMessage
from agentcron.series import Metrics
from agentcron.settings import Settings
from agentcron.watch.backfill import BackfillError, backfill
from agentcron.watch.heartbeats import BEAT, WORKER, FileHeartbeats, Heartbeat, Heartbeater
from agentcron.watch.metrics import RunObserver
from tests.unit.test_watch_watchdog import MemoryPublisher, Rig, daily

Sent = list[tuple[str, bytes | None]]


def recorder() -> tuple[Sent, object]:
    sent: Sent = []

    def send(url: str, body: bytes | None, timeout: float) -> int:
        sent.append((url, body))
        return 200

    return sent, send


def test_ping_urls_for_healthchecks_and_cronitor() -> None:
    base = "https://hc-ping.com/5f3c"
    assert [ping_url(base, e) for e in ("start", "success", "fail")] == [
        f"{base}/start", base, f"{base}/fail"]
    cron = "https://cronitor.link/p/KEY/job"
    assert ping_url(cron, "start", "cronitor") == f"{cron}?state=run"
    assert ping_url(cron, "success", "cronitor") == f"{cron}?state=complete"


def test_alert_logs_posts_json_and_pings_fail(caplog: pytest.LogCaptureFixture) -> None:
    sent, send = recorder()
    settings = Settings(alert_webhook_url="http://127.0.0.1:1/hook",
                        ping_urls=json.dumps({"daily": "https://hc-ping.com/secret-uuid"}))
    alerter = alerter_from_settings(settings, send=send)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, "agentcron.alerts"):
        alerter.alert(Alert("daily", "daily@2026-03-17T06:00:00Z", "missed", "no run"))
    assert json.loads(sent[0][1] or b"") == {"job": "daily", "window": "daily@2026-03-17T06:00:00Z",
                                            "state": "missed", "reason": "no run"}
    assert sent[1] == ("https://hc-ping.com/secret-uuid/fail", None)
    assert "ALERT daily window daily@2026-03-17T06:00:00Z missed" in caplog.text


def test_failing_notifier_never_raises_nor_logs_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    def broken(url: str, body: bytes | None, timeout: float) -> int:
        raise OSError("refused")

    alerter = Alerter([WebhookNotifier("http://u:pw@127.0.0.1:1/x", send=broken)],
                      {"daily": "https://hc-ping.com/secret-uuid"}, send=broken)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        alerter.alert(Alert("daily", "daily@2026-03-17T06:00:00Z", "missed", "r"))
        assert alerter.ping("daily", "success") is False
    assert "secret-uuid" not in caplog.text and "pw" not in caplog.text
    assert safe_target("https://hc-ping.com/secret-uuid?x=1") == "https://hc-ping.com/…"


def test_bad_ping_settings_are_rejected() -> None:
    with pytest.raises(ConfigError):
        alerter_from_settings(Settings(ping_urls="[1, 2]"))
    with pytest.raises(ConfigError):
        alerter_from_settings(Settings(ping_style="pagerduty"))


def test_backfill_skips_succeeded_windows_and_reruns_failed_ones(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-20T00:00:00Z")
    rig = Rig(tmp_path, clock)
    spec = daily()
    days = [parse_instant(f"2026-03-{d}T06:00:00Z") for d in (14, 15, 16, 17)]
    rig.ledger.mark_terminal(rig.window(spec, days[0]), RunState.SUCCEEDED, "")
    rig.ledger.mark_terminal(rig.window(spec, days[1]), RunState.FAILED, "boom")
    publisher = MemoryPublisher()
    report = backfill(spec, rig.ledger, publisher, parse_instant("2026-03-14T06:00:00Z"),
                      parse_instant("2026-03-17T06:00:00Z"))  # fmt: skip
    assert report.succeeded == ["daily@2026-03-14T06:00:00Z"]
    assert report.forced == ["daily@2026-03-15T06:00:00Z"]
    assert publisher.keys() == ["daily@2026-03-15T06:00:00Z", "daily@2026-03-16T06:00:00Z",
                                "daily@2026-03-17T06:00:00Z"]
    assert {o.message.trigger for o in publisher.sent} == {"backfill"}
    assert [o.message.force for o in publisher.sent] == [True, False, False]
    row = rig.ledger.get("daily", days[2])
    assert row is not None and row.state is RunState.SCHEDULED and row.trigger == "backfill"
    again = backfill(spec, rig.ledger, MemoryPublisher(), days[0], days[0])
    assert again.sent == [] and again.succeeded == ["daily@2026-03-14T06:00:00Z"]


def test_backfill_refuses_bad_ranges(tmp_path: Path) -> None:
    rig = Rig(tmp_path, FrozenClock("2026-03-20T00:00:00Z"))
    with pytest.raises(BackfillError):
        backfill(daily(), rig.ledger, MemoryPublisher(), parse_instant("2026-03-17T00:00:00Z"),
                 parse_instant("2026-03-16T00:00:00Z"))  # fmt: skip
    with pytest.raises(BackfillError):
        backfill(daily(), rig.ledger, MemoryPublisher(), parse_instant("2026-01-01T00:00:00Z"),
                 parse_instant("2026-03-16T00:00:00Z"), limit=10)  # fmt: skip


def test_file_heartbeats_expire_with_their_ttl(tmp_path: Path) -> None:
    clock = FrozenClock()
    store = FileHeartbeats(tmp_path, clock)
    store.beat(Heartbeat(BEAT, "beat-1", clock.now(), leader=True), ttl=30)
    store.beat(Heartbeat(WORKER, "w1@host", clock.now(), ["agentcron.sync"]), ttl=10)
    assert [h.ident for h in store.alive()] == ["beat-1", "w1@host"]
    assert store.alive(WORKER)[0].queues == ["agentcron.sync"]
    clock.advance(11)
    assert [h.ident for h in store.alive()] == ["beat-1"]
    store.remove(BEAT, "beat-1")
    assert store.alive() == []


def test_heartbeater_writes_and_removes_on_stop(tmp_path: Path) -> None:
    clock = FrozenClock()
    store = FileHeartbeats(tmp_path, clock)
    beater = Heartbeater(store, lambda: Heartbeat(BEAT, "b", clock.now()), 3600, 30, clock)
    beater.start()
    assert [h.ident for h in store.alive()] == ["b"]
    beater.stop()
    assert store.alive() == []


def _outcome(state: RunState | None, duplicate: bool = False, error: str | None = None) -> Outcome:
    return Outcome(state, duplicate, 1, None, error, f"{state}")


def test_run_observer_counts_outcomes_and_times_runs(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-17T06:00:00Z")
    rig = Rig(tmp_path, clock)
    spec = daily()
    window = rig.window(spec)
    rig.ledger.record_scheduled([window])
    claim = rig.ledger.claim(window, 7, "w", 3)
    assert claim.record is not None
    clock.advance(2)
    rig.ledger.start("daily", window.window_start, 7)
    clock.advance(3)
    rig.ledger.complete("daily", window.window_start, 7, RunState.SUCCEEDED)
    registry = CollectorRegistry()
    sent, send = recorder()
    alerter = Alerter(pings={"daily": "http://hc/x"}, send=send)  # type: ignore[arg-type]
    observer = RunObserver(rig.ledger, Metrics(registry), alerter, background=False)
    message = RunMessage("daily", window.window_key, window.window_start, window.slot)
    observer(_outcome(RunState.SUCCEEDED), spec, message)
    observer(_outcome(None, duplicate=True), spec, message)
    observer(_outcome(RunState.SKIPPED), spec, message)
    observer(_outcome(RunState.FAILED, error="Boom: x"), spec, message)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("agentcron_runs_total", job="daily", state="succeeded") == 1
    assert value("agentcron_runs_total", job="daily", state="duplicate") == 1
    assert value("agentcron_duplicates_suppressed_total", job="daily") == 1
    assert value("agentcron_overlap_skips_total", job="daily") == 1
    assert value("agentcron_run_duration_seconds_sum", job="daily") == pytest.approx(3.0)
    assert value("agentcron_start_lag_seconds_sum", job="daily") == pytest.approx(2.0)
    assert ("http://hc/x", None) in sent and ("http://hc/x/fail", None) in sent


def test_status_problems_name_missing_beat_and_workers() -> None:
    from agentcron.cli.status import JobStatus, StatusReport

    report = StatusReport(None, [], {"agentcron.sync": ["w1"]}, {},
                          [JobStatus("a", "agentcron.sync", None, None, 0),
                           JobStatus("b", "agentcron.async", None, None, 0)])  # fmt: skip
    assert report.problems() == ["no beat is alive (no heartbeat)", "no worker consumes agentcron.async"]
    healthy = StatusReport("beat-1", ["beat-1"], {"agentcron.sync": ["w1"]}, {},
                           [JobStatus("a", "agentcron.sync", None, None, 0)])  # fmt: skip
    assert healthy.problems() == []
    electing = StatusReport(None, ["beat-1"], {"agentcron.sync": ["w1"]}, {}, [])
    assert electing.problems() == ["no beat leads (none holds the leader lease)"]


def test_metered_publisher_observes_the_beat_emission_lag(tmp_path: Path) -> None:
    from agentcron.emission.envelope import emission_for
    from agentcron.emission.publisher import Outgoing
    from agentcron.watch.metrics import MeteredPublisher

    clock = FrozenClock("2026-03-17T06:00:02Z")
    registry = CollectorRegistry()
    inner = MemoryPublisher()
    emission = emission_for(daily(), parse_instant("2026-03-17T06:00:00Z"))
    MeteredPublisher(inner, clock, Metrics(registry)).publish(
        [Outgoing(emission.task, emission.queue, emission.message())])
    assert inner.keys() == ["daily@2026-03-17T06:00:00Z"]
    assert registry.get_sample_value("agentcron_beat_emission_lag_seconds_sum") == 2.0


class FakeChannel:
    def queue_declare(self, queue: str, passive: bool = False) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(message_count={"agentcron.sync": 4}.get(queue, 0))


class FakeConnection:
    default_channel = FakeChannel()

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FakeApp:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_task(self, name: str, queue: str, retry: bool) -> None:
        self.sent.append((name, queue))

    def connection_for_read(self) -> FakeConnection:
        return FakeConnection()


class FakeService:
    def __init__(self) -> None:
        from types import SimpleNamespace

        self.active = False
        self.emitter = SimpleNamespace(publisher=MemoryPublisher())
        self.leader = SimpleNamespace(owner="beat-test")


def test_beat_ops_heartbeat_and_watchdog_only_while_leading(tmp_path: Path) -> None:
    from agentcron.series import get_metrics
    from agentcron.watch.heartbeats import FileHeartbeats
    from workers.operate import BeatOps

    clock = FrozenClock()
    settings = Settings(data_dir=tmp_path, watchdog_interval=60, heartbeat_interval=3600)
    app, service = FakeApp(), FakeService()
    ops = BeatOps(app, service, settings, clock)  # type: ignore[arg-type]
    try:
        store = FileHeartbeats(tmp_path / "heartbeats", clock)
        assert [(h.role, h.ident, h.leader) for h in store.alive()] == [(BEAT, "beat-test", False)]
        clock.advance(11)
        ops.tick()
        assert app.sent == []  # a standby sends nothing
        service.active = True
        ops.heartbeater.beat_once()
        assert store.alive(BEAT)[0].leader
        assert get_metrics().beat_leader._value.get() == 1
        clock.advance(60)
        store.beat(Heartbeat(WORKER, "w1", clock.now(), ["agentcron.sync"]), 30)
        ops.tick()
        assert app.sent == [("agentcron.watchdog", "agentcron.sync")]
        ops.tick()
        assert len(app.sent) == 1  # once per interval
        m = get_metrics()
        assert m.queue_depth.labels("agentcron.sync")._value.get() == 4
        assert m.queue_workers.labels("agentcron.sync")._value.get() == 1
        assert m.queue_workers.labels("agentcron.async")._value.get() == 0
    finally:
        ops.close()
    assert FileHeartbeats(tmp_path / "heartbeats", clock).alive(BEAT) == []


def test_metered_publisher_keeps_the_fast_window_path() -> None:
    from agentcron.emission.envelope import emission_for
    from agentcron.watch.metrics import MeteredPublisher

    class Fast(MemoryPublisher):
        def __init__(self) -> None:
            super().__init__()
            self.windows: list[object] = []

        def publish_windows(self, batch: Sequence[tuple[str, str, object]]) -> None:
            self.windows.extend(batch)

    clock = FrozenClock("2026-03-17T06:00:05Z")
    registry = CollectorRegistry()
    inner = Fast()
    metered = MeteredPublisher(inner, clock, Metrics(registry))
    window = emission_for(daily(), parse_instant("2026-03-17T06:00:00Z")).window
    metered.publish_windows([("agentcron.run_sync", "agentcron.sync", window)] * 3)
    assert len(inner.windows) == 3
    assert registry.get_sample_value("agentcron_beat_emission_lag_seconds_count") == 1  # one slot
    assert registry.get_sample_value("agentcron_beat_emission_lag_seconds_sum") == 5.0
    assert not hasattr(MeteredPublisher(MemoryPublisher(), clock, Metrics(CollectorRegistry())),
                       "publish_windows")


def test_bad_notifier_settings_leave_a_log_only_alerter(caplog: pytest.LogCaptureFixture) -> None:
    from agentcron.alerts import safe_alerter

    with caplog.at_level(logging.ERROR, "agentcron.alerts"):
        alerter = safe_alerter(Settings(ping_urls="not json"))
    assert alerter.notifiers == [] and alerter.pings == {}
    assert "alert notifiers disabled" in caplog.text


def test_up_keeps_watching_when_the_ledger_stops_answering(tmp_path: Path) -> None:
    """agentcron up's live view: one line when the ledger is unreachable, then it goes on."""
    from sqlalchemy.exc import OperationalError

    from agentcron.up_view import RunWatcher

    class Flaky:
        down = True

        def list_runs(self, limit: int) -> list[object]:
            if self.down:
                raise OperationalError("SELECT", {}, Exception("server closed the connection"))
            return []

    ledger = Flaky()
    watcher = RunWatcher(ledger)  # type: ignore[arg-type]
    assert watcher.changes() == ["  ledger unavailable (OperationalError); retrying"]
    assert watcher.changes() == []  # said once per outage
    ledger.down = False
    assert watcher.changes() == []
    ledger.down = True
    assert len(watcher.changes()) == 1
