"""Dead letters without services: classification, the store (SQLite), the sink, the CLI."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Counter

from agentcron.alerts import Alert, Alerter
from agentcron.cli import main
from agentcron.clock import FrozenClock
from agentcron.deadletters import (
    DeadLetterSink,
    DeadLetterStore,
    PoisonEntry,
    decode_entry,
    kind_of,
    preview,
)
from agentcron.ledger.store import Ledger
from tests.poison_entries import (
    PICKLE,
    YAML,
    envelope,
    kind_of_label,
    poison_entries,
    redelivered,
)

QUEUE = "agentcron.sync"


def test_a_celery_envelope_decodes() -> None:
    raw = envelope("agentcron.run_sync", {"job": "a"}, QUEUE)
    payload = decode_entry(raw, max_bytes=len(raw))
    assert payload["headers"]["task"] == "agentcron.run_sync"
    assert decode_entry(raw.decode(), max_bytes=len(raw)) == payload


@pytest.mark.parametrize("label", sorted(poison_entries(QUEUE, 4096)))
def test_every_poison_kind_is_classified(label: str) -> None:
    raw = poison_entries(QUEUE, 4096)[label]
    if label in ("unknown_task", "undecodable-list-id"):  # sound envelopes for the transport
        decode_entry(raw, max_bytes=4096)
        return
    with pytest.raises(PoisonEntry) as caught:
        decode_entry(raw, max_bytes=4096)
    assert caught.value.kind == kind_of_label(label)
    assert caught.value.reason.startswith(caught.value.kind + ": ")


@pytest.mark.parametrize(("raw", "kind", "text"), [
    (b"\xff\xfe garbage", "undecodable", "not JSON"),
    (b'"a string"', "undecodable", "JSON str"),
    (b"{}", "undecodable", "delivery_tag"),
    (b'{"properties": {"delivery_tag": "t"}}', "undecodable", "delivery_info"),
    (b"x" * 101, "too_large", "101 bytes, over the limit of 100"),
])  # fmt: skip
def test_raw_entries_that_are_not_envelopes(raw: bytes, kind: str, text: str) -> None:
    with pytest.raises(PoisonEntry) as caught:
        decode_entry(raw, max_bytes=100)
    assert caught.value.kind == kind and text in caught.value.reason


def _spoiled(**changes: Any) -> bytes:
    payload = json.loads(envelope("agentcron.run_sync", {}, QUEUE))
    for path, value in changes.items():
        target = payload
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last.replace("_", "-") if last == "content_type" else last] = value
    return json.dumps(payload).encode()


@pytest.mark.parametrize(("changes", "kind"), [
    ({"content_type": PICKLE}, "content_type"),
    ({"content_type": YAML}, "content_type"),
    ({"content_type": None}, "content_type"),
    ({"body": "%%% not base64"}, "undecodable"),
    ({"body": 12}, "undecodable"),
    ({"properties__body_encoding": "rot13"}, "undecodable"),
    ({"headers": [1]}, "undecodable"),
    ({"properties__delivery_tag": ["unhashable"]}, "undecodable"),
    ({"headers__task": ["agentcron.run_sync"]}, "undecodable"),
    ({"properties__delivery_info": {"exchange": ""}}, "undecodable"),
])  # fmt: skip
def test_spoiled_envelopes(changes: dict[str, Any], kind: str) -> None:
    with pytest.raises(PoisonEntry) as caught:
        decode_entry(_spoiled(**changes), max_bytes=1 << 20)
    assert caught.value.kind == kind


def test_kind_of_a_reason() -> None:
    assert kind_of("forged: bad signature") == "forged"
    assert kind_of("unsigned: no signature") == "unsigned"
    assert kind_of("whatever text") == "other"


def test_preview_never_shows_a_body() -> None:
    secret = base64.b64encode(b'{"api_key": "sk-secret"}').decode()
    raw = envelope("agentcron.run_sync", {}, QUEUE).replace(b'"body": "', f'"body": "{secret}'.encode())
    text = preview(raw)
    assert "agentcron.run_sync" in text and secret not in text and "sk-secret" not in text
    long = preview(b"A" * 10_000)
    assert len(long) < 200 and "10000 bytes" in long


@pytest.fixture
def store(tmp_path: Path, clock: FrozenClock) -> DeadLetterStore:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    return DeadLetterStore(ledger.engine, keep=3, raw_max_bytes=10, clock=clock)


def test_store_keeps_the_newest_and_cuts_raw(store: DeadLetterStore, clock: FrozenClock) -> None:
    ids = [store.add(f"undecodable: #{n}", QUEUE, f"entry {n}") for n in range(5)]
    letters = store.list()
    assert [d.id for d in letters] == ids[:1:-1] and store.count() == 3
    assert letters[0].raw == b"entry 4" and not letters[0].truncated
    assert letters[0].created_at == clock.now() and letters[0].kind == "undecodable"
    big = store.get(store.add("too_large: big", QUEUE, b"0123456789ABCDEF"))
    assert big is not None and big.raw == b"0123456789" and big.truncated and big.size == 16
    assert store.remove(big.id) and not store.remove(big.id)
    assert store.purge() == 2 and store.count() == 0  # the big one pushed the oldest out


def test_a_redelivered_message_is_stored_once(store: DeadLetterStore) -> None:
    """A worker cut off between storing a letter and acknowledging its message gets it again."""
    raw = envelope("agentcron.run_sync", {}, QUEUE)
    first = store.add_entry("undecodable: x", QUEUE, raw)
    assert first[1] and store.add_entry("undecodable: x", QUEUE, redelivered(raw)) == (first[0], False)
    assert store.count() == 1
    assert store.remove(first[0]) and store.add_entry("undecodable: x", QUEUE, raw)[1]  # requeued
    assert store.add_entry("undecodable: x", "agentcron.async", raw)[1]  # another queue's message
    assert store.add_entry("undecodable: x", QUEUE, envelope("agentcron.run_sync", {}, QUEUE))[1]
    assert store.add("undecodable: y", QUEUE, b"[1]") != store.add("undecodable: y", QUEUE, b"[1]")


class _Recorder:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)


def test_sink_stores_logs_once_counts_and_alerts(
    store: DeadLetterStore, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = _Recorder()
    counter = Counter("dl_test", "x", ["queue", "kind"], registry=CollectorRegistry())
    sink = DeadLetterSink(store, alerter=Alerter([recorder]), counter=counter)
    with caplog.at_level(logging.INFO):
        letter_id = sink("content_type: pickle refused", QUEUE, b"\x80\x04 pickled")
    assert store.get(letter_id or 0) is not None
    assert counter.labels(QUEUE, "content_type")._value.get() == 1
    assert sink._alerts is not None
    sink._alerts.shutdown(wait=True)
    assert [a.state for a in recorder.alerts] == ["dead_letter"]
    assert "pickle refused" in recorder.alerts[0].reason
    lines = [r for r in caplog.records if "pickle" in r.getMessage()]
    assert len(lines) == 1 and f"#{letter_id}" in lines[0].getMessage()


def test_sink_counts_and_alerts_a_redelivered_message_once(
    store: DeadLetterStore, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = _Recorder()
    counter = Counter("dl_again", "x", ["queue", "kind"], registry=CollectorRegistry())
    sink = DeadLetterSink(store, alerter=Alerter([recorder]), counter=counter, alert_interval=0)
    raw = envelope("agentcron.run_sync", {}, QUEUE)
    with caplog.at_level(logging.INFO):
        first = sink("undecodable: TypeError", QUEUE, raw)
        assert sink("undecodable: TypeError", QUEUE, redelivered(raw)) == first
    assert sink._alerts is not None
    sink._alerts.shutdown(wait=True)
    assert store.count() == 1 and counter.labels(QUEUE, "undecodable")._value.get() == 1
    assert len(recorder.alerts) == 1
    assert f"dead letter #{first} from {QUEUE} delivered again" in caplog.text


def test_sink_never_raises_when_the_store_fails(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def add_entry(self, *_: Any) -> tuple[int, bool]:
            raise OSError("disk gone")

    sink = DeadLetterSink(Broken(), retry_interval=0)  # type: ignore[arg-type]
    assert sink("undecodable: x", QUEUE, b"x") is None
    assert "not stored yet, kept in memory and retried: OSError: disk gone" in caplog.text


def test_cli_lists_requeue_errors_and_purges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCRON_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("AGENTCRON_BROKER_URL", raising=False)
    monkeypatch.delenv("AGENTCRON_DATABASE_URL", raising=False)
    ledger = Ledger(f"sqlite:///{(tmp_path / 'ledger.sqlite').resolve()}")
    store = DeadLetterStore(ledger.engine, raw_max_bytes=4)
    store.add("undecodable: not JSON", QUEUE, b"garbage")  # stored truncated
    runner = CliRunner()
    listed = runner.invoke(main, ["dead-letters", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["kind"] == "undecodable"
    assert "undecodable" in runner.invoke(main, ["dead-letters"]).output
    letter_id = store.list()[0].id
    truncated = runner.invoke(main, ["dead-letters", "--requeue", str(letter_id)])
    assert truncated.exit_code == 2 and "cannot be requeued" in truncated.output
    both = runner.invoke(main, ["dead-letters", "--requeue", "1", "--purge"])
    assert both.exit_code == 2 and "exclusive" in both.output
    purged = runner.invoke(main, ["dead-letters", "--purge"])
    assert purged.exit_code == 0 and "purged 1" in purged.output


class _Sink(DeadLetterSink):
    def __init__(self) -> None:
        super().__init__(None, max_bytes=123)
        self.seen: list[tuple[str, str, bytes | str]] = []

    def __call__(self, reason: str, queue: str, raw: bytes | str) -> int | None:
        self.seen.append((reason, queue, raw))
        return None


class _Message:
    def __init__(self, raw: bytes) -> None:
        self._raw = json.loads(raw)
        self.headers = self._raw["headers"]
        self.delivery_info = self._raw["properties"]["delivery_info"]
        self.content_type = self._raw["content-type"]
        self.done: list[str] = []

    def ack(self) -> None:
        self.done.append("ack")

    def reject_log_error(self, *_: Any) -> None:
        self.done.append("reject")


@pytest.fixture
def sink() -> Any:
    from agentcron.deadletters import set_default_sink

    made = _Sink()
    set_default_sink(made)
    yield made
    set_default_sink(None)


def test_the_consumer_dead_letters_what_celery_would_drop(sink: _Sink) -> None:
    from kombu.exceptions import ContentDisallowed

    from agentcron.deadletters import max_message_bytes
    from workers.consumer import Consumer

    assert max_message_bytes() == 123
    consumer = type("FakeConsumer", (), {"connection_errors": ()})()
    raw = envelope("no.such.task", {}, QUEUE)
    unknown, refused, foreign = _Message(raw), _Message(raw), _Message(raw)
    Consumer.on_unknown_task(consumer, None, unknown, KeyError("no.such.task"))
    Consumer.on_decode_error(consumer, refused, ContentDisallowed("pickle refused"))
    Consumer.on_unknown_message(consumer, None, foreign)
    assert [r.split(":")[0] for r, _, _ in sink.seen] == ["unknown_task", "content_type",
                                                         "undecodable"]  # fmt: skip
    assert "'no.such.task'" in sink.seen[0][0]
    assert all(q == QUEUE and json.loads(r) == json.loads(raw) for _, q, r in sink.seen)
    assert (unknown.done, refused.done, foreign.done) == (["reject"], ["ack"], ["reject"])


def test_entries_the_store_refused_are_kept_and_stored_later(store: DeadLetterStore) -> None:
    class Flaky:
        down = True

        def add(self, reason: str, queue: str, raw: bytes | str) -> int:
            return self.add_entry(reason, queue, raw)[0]

        def add_entry(self, reason: str, queue: str, raw: bytes | str) -> tuple[int, bool]:
            if self.down:
                raise OSError("database down")
            return store.add_entry(reason, queue, raw)

    flaky = Flaky()
    sink = DeadLetterSink(flaky, retry_interval=0)  # type: ignore[arg-type]
    assert sink("undecodable: a", QUEUE, b"a") is None
    assert sink("undecodable: b", QUEUE, b"b") is None
    assert sink.flush_pending() == 0 and len(sink.pending) == 2
    flaky.down = False
    assert sink("undecodable: c", QUEUE, b"c") is not None  # stores, then flushes the others
    assert not sink.pending
    assert sorted(d.raw for d in store.list()) == [b"a", b"b", b"c"]


def test_alerts_are_throttled_per_queue_and_kind(store: DeadLetterStore, clock: FrozenClock) -> None:
    recorder = _Recorder()
    sink = DeadLetterSink(store, alerter=Alerter([recorder]), alert_interval=60, clock=clock)
    for _ in range(5):
        sink("undecodable: x", QUEUE, b"x")
    sink("content_type: pickle", QUEUE, b"p")
    clock.advance(61)
    sink("undecodable: y", QUEUE, b"y")
    assert sink._alerts is not None
    sink._alerts.shutdown(wait=True)
    reasons = [a.reason for a in recorder.alerts]
    assert reasons == ["undecodable: x", "content_type: pickle",
                       "undecodable: y (and 4 more undecodable since the last alert)"]
    assert store.list()[0].id == 7  # every entry is stored (the newest 3 kept), alerts throttled
