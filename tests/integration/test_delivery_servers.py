"""The outbox against a real SMTP server (aiosmtpd) and a real HTTP receiver.

The guard runs windows on a real ledger (SQLite, and PostgreSQL); the sender sends to servers
started here. Time is an injected clock: backoff and the maximum age are crossed by moving it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from agentcron.alerts import Alert, Alerter
from agentcron.clock import SYSTEM_CLOCK, FrozenClock
from agentcron.context import RunContext
from agentcron.delivery.mail import FolderMailer, SmtpMailer
from agentcron.delivery.outbox import Outbox
from agentcron.delivery.sender import Sender, SenderOptions, Transports
from agentcron.delivery.webhook import WebhookPoster
from agentcron.ledger.records import RunState
from agentcron.ledger.store import Ledger
from tests.delivery_servers import HttpReceiver, SmtpServer, http_receiver, smtp_server
from tests.services import free_port, reset_postgres
from tests.unit.test_guard import World, make_spec

ROOT = Path(__file__).resolve().parents[2]


def decoded(part: Message) -> str:
    """A MIME part's payload, transfer-decoded, as text."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def world(request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock) -> Iterator[World]:
    world = World(tmp_path, clock)
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        reset_postgres(url)
        world.ledger.close()
        world.ledger = Ledger(url, clock)
        world.ledger.upgrade()
    yield world
    world.ledger.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


def sender(world: World, mailer: Any, recorder: Recorder | None = None,
           owner: str = "s1", max_age: float = 86400) -> Sender:  # fmt: skip
    transports = Transports(mailer, WebhookPoster(5.0), "reports@example.com")
    options = SenderOptions(max_age=max_age, lease=30, backoff_base=10, backoff_cap=60)
    return Sender(world.ledger.engine, world.clock, transports, owner, options=options,
                  alerter=Alerter([recorder] if recorder else []))  # fmt: skip


def run_window(world: World, spec: Any, slot: str = "2026-03-17T06:00:00Z") -> str:
    message = world.message(spec, slot)
    assert world.guard().run_sync(spec, message).state is RunState.SUCCEEDED
    return message.window_key


def drain(s: Sender, world: World, passes: int = 20, step: float = 61.0) -> None:
    """Sender passes, moving the clock past any backoff between them."""
    for _ in range(passes):
        s.run_once()
        world.clock.advance(step)


def test_one_email_per_succeeded_window_across_retries(world: World, smtp: SmtpServer) -> None:
    def agent(ctx: RunContext) -> None:
        ctx.report("Weekly churn", f"# Churn\n\n*attempt* {ctx.attempt}",
                   attachments={"top.csv": b"customer,risk\nacme,0.9\n"})
        if ctx.attempt == 1:
            raise RuntimeError("the first attempt reports, then fails")

    spec = make_spec(agent, max_retries=2, backoff_base=0, deliver=["mailto:team@example.com"])
    key = run_window(world, spec)
    s = sender(world, SmtpMailer(smtp.url, 5))
    drain(s, world, passes=3)
    [msg] = smtp.messages
    assert msg["X-Agentcron-Window"] == key and msg["To"] == "team@example.com"
    assert msg["Message-ID"].endswith("@example.com>")
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert "attempt* 2" in decoded(parts["text/plain"])
    assert "<em>attempt</em> 2" in decoded(parts["text/html"])
    assert parts["text/csv"].get_filename() == "top.csv"
    [row] = Outbox(world.ledger.engine, world.clock).list()
    assert (row.state, row.attempts) == ("sent", 1)


def test_an_smtp_outage_of_several_periods_delivers_late_and_loses_nothing(
    world: World, smtp: SmtpServer,
) -> None:
    spec = make_spec(lambda ctx: ctx.report(f"Daily {ctx.window_key}", "body"),
                     schedule="0 * * * *", deliver=["mailto:team@example.com"])
    s = sender(world, SmtpMailer(smtp.url, 5))
    smtp.stop()
    keys = []
    for hour in range(4):  # four windows while the server is down
        keys.append(run_window(world, spec, f"2026-03-17T{6 + hour:02d}:00:00Z"))
        drain(s, world, passes=3, step=600)
    assert smtp.messages == []
    pending = Outbox(world.ledger.engine, world.clock).list(state="pending")
    assert len(pending) == 4 and all(r.attempts >= 2 for r in pending[1:])
    smtp.start()
    drain(s, world, passes=10)
    assert sorted(m["X-Agentcron-Window"] for m in smtp.messages) == sorted(keys)
    assert {r.state for r in Outbox(world.ledger.engine, world.clock).list()} == {"sent"}


def test_a_webhook_answering_500_three_times_gets_one_delivery_after_four_attempts(
    world: World, http: HttpReceiver,
) -> None:
    http.statuses = {"/hook": [500, 500, 500]}
    spec = make_spec(lambda ctx: ctx.report("Market", {"up": 3}),
                     deliver=[http.url(), "slack:" + http.url("/slack")])
    key = run_window(world, spec)
    drain(sender(world, FolderMailer(world.settings.data_dir)), world)
    hooks = [r for r in http.requests if r["path"] == "/hook"]
    assert [r["status"] for r in hooks] == [500, 500, 500, 200]
    assert len({r["headers"]["Idempotency-Key"] for r in hooks}) == 1
    assert hooks[-1]["json"]["window_key"] == key and hooks[-1]["json"]["body"] == {"up": 3}
    [slack] = [r for r in http.requests if r["path"] == "/slack"]
    assert slack["json"]["text"].startswith("*Market*\n")
    rows = {r.kind: r for r in Outbox(world.ledger.engine, world.clock).list()}
    assert (rows["webhook"].state, rows["webhook"].attempts) == ("sent", 4)
    assert (rows["slack"].state, rows["slack"].attempts) == ("sent", 1)


def test_a_permanent_refusal_fails_at_once_and_alerts(world: World, http: HttpReceiver) -> None:
    http.statuses = {"/secret-path": [404]}
    recorder = Recorder()
    spec = make_spec(lambda ctx: ctx.report("t", "b"), deliver=[http.url("/secret-path")])
    key = run_window(world, spec)
    drain(sender(world, FolderMailer(world.settings.data_dir), recorder), world, passes=3)
    [row] = Outbox(world.ledger.engine, world.clock).list()
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "HTTP 404")
    [alert] = recorder.alerts
    assert (alert.window, alert.state) == (key, "delivery failed")
    assert "secret-path" not in alert.reason


def test_past_the_maximum_age_a_delivery_fails_and_alerts(world: World, smtp: SmtpServer) -> None:
    smtp.stop()
    recorder = Recorder()
    spec = make_spec(lambda ctx: ctx.report("t", "b"), deliver=["mailto:team@example.com"])
    run_window(world, spec)
    drain(sender(world, SmtpMailer(smtp.url, 5), recorder, max_age=3600), world, passes=100,
          step=120)
    [row] = Outbox(world.ledger.engine, world.clock).list()
    assert row.state == "failed" and "still failing after" in (row.last_error or "")
    assert len(recorder.alerts) == 1
    assert Outbox(world.ledger.engine, world.clock).retry(row.id)
    smtp.start()
    drain(sender(world, SmtpMailer(smtp.url, 5)), world, passes=2)
    assert len(smtp.messages) == 1


def test_without_smtp_email_lands_in_the_outbox_folder_once(world: World) -> None:
    spec = make_spec(lambda ctx: ctx.report("Audit", "- [x] done"),
                     deliver=["mailto:a@example.com", "mailto:b@example.com"])
    run_window(world, spec)
    folder = world.settings.data_dir / "outbox"
    drain(sender(world, FolderMailer(folder)), world, passes=2)
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 2 and all(b"X-Agentcron-Window: job@" in f.read_bytes() for f in files)


KILLED_SENDER = '''
import os, sys
from agentcron.clock import SYSTEM_CLOCK
from agentcron.delivery.mail import SmtpMailer
from agentcron.delivery.outbox import Outbox
from agentcron.delivery.sender import Sender, Transports
from agentcron.delivery.webhook import WebhookPoster
from agentcron.ledger.store import Ledger

def killed(*args, **kwargs):
    os._exit(9)  # the process dies after its send, before it records it

Outbox.mark_sent = killed
ledger = Ledger(sys.argv[1])
transports = Transports(SmtpMailer(sys.argv[2], 5), WebhookPoster(5), "reports@example.com")
Sender(ledger.engine, SYSTEM_CLOCK, transports, "doomed").run_once()
'''


def test_a_sender_killed_between_send_and_commit_repeats_once_with_the_same_message_id(
    world: World, smtp: SmtpServer, tmp_path: Path,
) -> None:
    spec = make_spec(lambda ctx: ctx.report("t", "b"), deliver=["mailto:team@example.com"])
    run_window(world, spec)
    script = tmp_path / "killed_sender.py"
    script.write_text(textwrap.dedent(KILLED_SENDER))
    url = world.ledger.engine.url.render_as_string(hide_password=False)
    done = subprocess.run([sys.executable, str(script), url, smtp.url], cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 9 and len(smtp.messages) == 1
    # The dead sender claimed the row at the real time: move past its lease from there.
    world.clock.advance(SYSTEM_CLOCK.now() - world.clock.now() + timedelta(seconds=120))
    drain(sender(world, SmtpMailer(smtp.url, 5)), world, passes=3)
    assert len(smtp.messages) == 2
    assert smtp.messages[0]["Message-ID"] == smtp.messages[1]["Message-ID"]
    [row] = Outbox(world.ledger.engine, world.clock).list()
    assert (row.state, row.attempts) == ("sent", 2)


def test_two_senders_never_send_one_row_twice(world: World, smtp: SmtpServer) -> None:
    spec = make_spec(lambda ctx: [ctx.report(f"r{i}", "b") for i in range(10)] and None,
                     deliver=["mailto:team@example.com"])
    run_window(world, spec)
    a, b = sender(world, SmtpMailer(smtp.url, 5), owner="a"), sender(
        world, SmtpMailer(smtp.url, 5), owner="b")
    first = a.outbox.claim("a", 30, limit=6)
    second = b.outbox.claim("b", 30, limit=10)
    assert {r.id for r in first}.isdisjoint({r.id for r in second})
    assert len(first) + len(second) == 10
    for item in first:
        a.deliver(item)
    for item in second:
        b.deliver(item)
    assert len(smtp.messages) == 10


def test_smtp_url_password_is_kept_out_of_errors() -> None:
    from agentcron.delivery.errors import DeliveryError

    mailer = SmtpMailer("smtp+starttls://me:s3cret@127.0.0.1:1", timeout=2)
    with pytest.raises(DeliveryError) as caught:
        mailer.send(__import__("email.message").message.EmailMessage())
    assert caught.value.transient and "s3cret" not in str(caught.value)




def test_metrics_count_deliveries_by_state_and_kind_and_their_lag(world: World,
                                                                   http: HttpReceiver) -> None:
    from prometheus_client import CollectorRegistry

    from agentcron.delivery.metrics import DeliveryMetrics

    registry = CollectorRegistry()
    s = sender(world, FolderMailer(world.settings.data_dir / "outbox"))
    s.metrics = DeliveryMetrics(registry)
    spec = make_spec(lambda ctx: ctx.report("t", "b"),
                     deliver=["mailto:a@example.com", http.url()])
    run_window(world, spec)
    world.clock.advance(5)
    s.metrics.refresh(s.outbox, world.clock.now())
    assert registry.get_sample_value("agentcron_deliveries", {"state": "pending",
                                                               "kind": "email"}) == 1
    assert registry.get_sample_value("agentcron_delivery_oldest_pending_seconds") == 5
    s.run_once()
    s.metrics.refresh(s.outbox, world.clock.now())
    assert registry.get_sample_value("agentcron_deliveries", {"state": "sent",
                                                               "kind": "webhook"}) == 1
    assert registry.get_sample_value("agentcron_delivery_lag_seconds_sum", {"kind": "email"}) == 5
    assert registry.get_sample_value("agentcron_delivery_oldest_pending_seconds") == 0


def test_the_success_and_its_reports_commit_together(world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while writing the reports rolls the success back too (one transaction)."""
    from agentcron.ledger import completions

    def broken(*args: Any) -> None:
        raise RuntimeError("disk full while writing the outbox")

    monkeypatch.setattr(completions, "write_outputs", broken)
    spec = make_spec(lambda ctx: ctx.report("t", "b"), deliver=["mailto:a@example.com"])
    message = world.message(spec)
    with pytest.raises(RuntimeError, match="disk full"):
        world.guard().run_sync(spec, message)
    record = world.ledger.get(spec.name, message.window_start)
    assert record is not None and record.state is RunState.RUNNING
    monkeypatch.undo()
    plain = make_spec(lambda ctx: None, name="plain")
    assert world.guard().run_sync(plain, world.message(plain)).state is RunState.SUCCEEDED


def test_a_forced_rerun_is_a_new_message_not_a_duplicate(world: World, smtp: SmtpServer) -> None:
    spec = make_spec(lambda ctx: ctx.report("t", "b"), deliver=["mailto:a@example.com"])
    s = sender(world, SmtpMailer(smtp.url, 5))
    run_window(world, spec)
    drain(s, world, passes=2)
    forced = world.message(spec, force=True)
    assert world.guard().run_sync(spec, forced).state is RunState.SUCCEEDED
    drain(s, world, passes=2)
    assert len(smtp.messages) == 2
    assert smtp.messages[0]["X-Agentcron-Window"] == smtp.messages[1]["X-Agentcron-Window"]
    assert smtp.messages[0]["Message-ID"] != smtp.messages[1]["Message-ID"]


def test_a_batch_mixing_runs_with_and_without_reports_completes_both(world: World) -> None:
    """The async worker's batches: one transaction; only the reporting run writes outbox rows."""
    from agentcron.ledger.records import ClaimRequest, NewWindow
    from agentcron.reports import make_report
    from agentcron.reports.records import list_reports

    start = world.clock.now()
    from agentcron.windows import window_key

    windows = [NewWindow(job, start, window_key(job, start), start) for job in ("with", "without")]
    claims = world.ledger.claim_many([ClaimRequest(w, 10 + i, "w", 3, running=True)
                                      for i, w in enumerate(windows)])  # fmt: skip
    assert all(c.status.value == "claimed" for c in claims)
    requests = [
        world.ledger.complete_request("with", start, 10, RunState.SUCCEEDED, duration=0.1,
                                      reports=[make_report("r", "b")],
                                      deliver=["mailto:a@example.com"]),
        world.ledger.complete_request("without", start, 11, RunState.SUCCEEDED, duration=0.1),
        world.ledger.complete_request("with", start, 9, RunState.SUCCEEDED, duration=0.1,
                                      reports=[make_report("stale", "b")],
                                      deliver=["mailto:a@example.com"]),
    ]
    assert world.ledger.complete_many(requests) == [True, True, False]
    assert [r.title for r in list_reports(world.ledger.engine)] == ["r"]
    rows = Outbox(world.ledger.engine, world.clock).list()
    assert [d.window_key for d in rows] == [windows[0].window_key]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_url_credentials_are_used_percent_decoded(world: World) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    seen: list[tuple[str, str]] = []
    received: list[Any] = []

    def authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str,
                      data: Any) -> AuthResult:  # fmt: skip
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"p@ss:w/rd")

    class Handler:
        async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
            received.append(session.authenticated)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                            authenticator=authenticator, auth_require_tls=False,
                            auth_required=True)  # fmt: skip
    controller.start()
    try:
        spec = make_spec(lambda ctx: ctx.report("t", "b"), deliver=["mailto:a@example.com"])
        run_window(world, spec)
        good = f"smtp://me%40example.com:p%40ss%3Aw%2Frd@127.0.0.1:{port}"
        drain(sender(world, SmtpMailer(good, 5)), world, passes=2)
        assert seen == [("me@example.com", "p@ss:w/rd")] and received == [True]
    finally:
        controller.stop()


def test_a_row_no_send_can_take_fails_once_and_the_rest_go_on(world: World,
                                                              http: HttpReceiver) -> None:
    from sqlalchemy import update

    from agentcron.ledger.outputs import DELIVERIES

    recorder = Recorder()
    spec = make_spec(lambda ctx: ctx.report("t", "b"),
                     deliver=["mailto:a@example.com", http.url()])
    run_window(world, spec)
    with world.ledger.engine.begin() as conn:  # a row written by an older, laxer version
        conn.execute(update(DELIVERIES).where(DELIVERIES.c.kind == "email")
                     .values(target="mailto:broken"))  # fmt: skip
    drain(sender(world, FolderMailer(world.settings.data_dir / "outbox"), recorder), world,
          passes=3)
    rows = {r.kind: r for r in Outbox(world.ledger.engine, world.clock).list()}
    assert (rows["email"].state, rows["email"].last_error) == ("failed", "cannot be sent: ConfigError")
    assert rows["webhook"].state == "sent" and len(recorder.alerts) == 1


def test_markdown_tables_render_and_raw_html_is_escaped() -> None:
    from datetime import UTC, datetime

    from agentcron.delivery.mail import render_html
    from agentcron.reports.records import StoredReport

    body = "| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>"
    report = StoredReport(1, "j", "j@x", 1, "t", "markdown", body, (), datetime(2026, 1, 1, tzinfo=UTC))
    html = render_html(report) or ""
    assert "<table>" in html and "<td>1</td>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
