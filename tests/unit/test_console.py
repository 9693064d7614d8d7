"""The console over a real SQLite ledger and the embedded broker: login, CSRF, read-only,
pages, actions, bad input (Starlette's TestClient; the browser test is tests/integration)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agentcron.clock import FrozenClock
from agentcron.console import create_app
from agentcron.ledger.records import NewWindow, RunState
from agentcron.ledger.views import LedgerViews
from agentcron.runtime import Runtime
from agentcron.settings import Settings

TOKEN = "test-token-0123456789"
SCHEDULE = '''
from agentcron import Job

JOBS = [
    Job("secret_named_job", agent="console_agents:work", schedule="*/5 * * * *",
        config={"api_key": "sk-do-not-show"}),
    Job("daily_digest", agent="console_agents:work", schedule="0 6 * * *", tz="Europe/Paris"),
]
'''
AGENTS = '''
def work(ctx):
    ctx.log.info("working on %s", ctx.window_key)
    return {"summary": "all good"}
'''


@pytest.fixture
def runtime(tmp_path: Path, clock: FrozenClock) -> Runtime:
    (tmp_path / "beat_schedule.py").write_text(SCHEDULE)
    (tmp_path / "console_agents.py").write_text(AGENTS)
    settings = Settings(data_dir=tmp_path / "data", schedule_path=tmp_path / "beat_schedule.py")
    made = Runtime(settings, clock)
    made.ledger.upgrade()
    return made


def client_for(runtime: Runtime, readonly: bool = False) -> TestClient:
    return TestClient(create_app(runtime, TOKEN, readonly=readonly), follow_redirects=False)


def logged_in(runtime: Runtime, readonly: bool = False) -> TestClient:
    client = client_for(runtime, readonly)
    opened = client.get(f"/?token={TOKEN}&sort=name")
    assert opened.status_code == 303 and opened.headers["location"] == "/?sort=name"
    cookie = opened.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_nothing_without_the_token(runtime: Runtime) -> None:
    client = client_for(runtime)
    for path in ("/", "/jobs/secret_named_job", "/fleet", "/runs/secret_named_job@x",
                 "/?token=wrong-token-0000000000"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "secret_named_job" not in response.text and "daily_digest" not in response.text
    posted = client.post("/jobs/secret_named_job/pause", data={"csrf": "x"})
    assert posted.status_code == 401
    assert client.post("/login", data={"token": "nope"}).status_code == 401
    login = client.post("/login", data={"token": TOKEN})
    assert login.status_code == 303 and "agentcron_session" in login.headers["set-cookie"]


def test_jobs_page_lists_jobs_with_schedule_next_fire_and_strip(runtime: Runtime) -> None:
    slot = runtime.clock.now()
    runtime.ledger.record_scheduled([NewWindow("secret_named_job", slot,
                                               f"secret_named_job@{slot:%Y-%m-%dT%H:%M:%SZ}", slot)])
    client = logged_in(runtime)
    page = client.get("/").text
    assert "secret_named_job" in page and "daily_digest" in page
    assert "2026-03-18 06:00 CET" in page and "2026-03-18T05:00:00Z" in page  # local and UTC
    assert 'data-state="scheduled"' in page
    assert "sk-do-not-show" not in page and "api_key" not in page
    assert "Content-Security-Policy" in client.get("/").headers
    filtered = client.get("/?q=digest").text
    assert "daily_digest" in filtered and "secret_named_job" not in filtered
    live = client.get("/", headers={"X-Console-Live": "1"}).text
    assert "<html" not in live and "daily_digest" in live


def test_actions_need_csrf_and_pause_resume_work(runtime: Runtime) -> None:
    client = logged_in(runtime)
    page = client.get("/jobs/daily_digest").text
    token = csrf_of(page)
    refused = client.post("/jobs/daily_digest/pause", data={})
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = client.post("/jobs/daily_digest/pause", data={"csrf": token + "x"})
    assert wrong.status_code == 403
    paused = client.post("/jobs/daily_digest/pause", data={"csrf": token})
    assert paused.status_code == 303
    shown = client.get("/jobs/daily_digest").text
    assert "daily_digest paused" in shown and 'id="resume"' in shown
    assert client.post("/jobs/daily_digest/resume", data={"csrf": token}).status_code == 303
    assert 'id="pause"' in client.get("/jobs/daily_digest").text


def test_trigger_is_deduped_and_backfill_shows_the_count_first(runtime: Runtime) -> None:
    client = logged_in(runtime)
    token = csrf_of(client.get("/jobs/daily_digest").text)
    assert client.post("/jobs/daily_digest/trigger", data={"csrf": token}).status_code == 303
    assert "sent daily_digest@" in client.get("/jobs/daily_digest").text
    client.post("/jobs/daily_digest/trigger", data={"csrf": token})
    assert "deduped" in client.get("/jobs/daily_digest").text
    form = {"csrf": token, "from": "2026-03-01T00:00Z", "to": "2026-03-05T23:59Z"}
    preview = client.post("/jobs/daily_digest/backfill", data=form)
    assert preview.status_code == 200 and "Backfill <strong>5</strong> window(s)" in preview.text
    assert runtime.ledger.count_by_state("daily_digest") == {"scheduled": 1}
    sent = client.post("/jobs/daily_digest/backfill", data=form | {"confirm": "5"})
    assert sent.status_code == 303
    assert runtime.ledger.count_by_state("daily_digest") == {"scheduled": 6}
    huge = client.post("/jobs/secret_named_job/backfill",
                       data={"csrf": token, "from": "2000-01-01T00:00Z", "to": "2026-01-01T00:00Z"})
    assert huge.status_code == 400 and "more than --limit 1000" in huge.text


def test_read_only_hides_and_refuses_actions(runtime: Runtime) -> None:
    client = logged_in(runtime, readonly=True)
    page = client.get("/jobs/daily_digest").text
    assert "Pause" not in page and "Trigger" not in page and "read-only" in page
    refused = client.post("/jobs/daily_digest/pause", data={"csrf": "anything"})
    assert refused.status_code == 403 and "read-only" in refused.text


def test_run_page_shows_result_and_log_lines(runtime: Runtime) -> None:
    now = runtime.clock.now()
    key = f"daily_digest@{now:%Y-%m-%dT%H:%M:%SZ}"
    window = NewWindow("daily_digest", now, key, now)
    runtime.ledger.claim(window, 5, "host:1", 3, running=True)
    runtime.ledger.complete("daily_digest", now, 5, RunState.SUCCEEDED, result={"summary": "ok!"},
                            duration=1.5)
    LedgerViews(runtime.ledger).save_run_log(key, 1, ["INFO <b>fetched</b> 3 rows"])
    client = logged_in(runtime)
    page = client.get(f"/runs/{key}").text
    assert "host:1" in page and "&#34;summary&#34;: &#34;ok!&#34;" in page
    assert "INFO &lt;b&gt;fetched&lt;/b&gt; 3 rows" in page  # escaped, never markup
    assert "ok!" in client.get("/jobs/daily_digest").text


@pytest.mark.parametrize(("path", "status"), [
    ("/?page=0", 400), ("/?page=abc", 400), ("/?page=99999999999", 400), ("/?sort=drop", 400),
    ("/?q=" + "x" * 500, 400), ("/?q=%00", 400), ("/jobs/nope", 404), ("/jobs/%0a", 400),
    ("/jobs/daily_digest?by=year", 400), ("/runs/nokey", 400), ("/runs/a@b", 404),
    ("/nowhere", 404), ("/fleet", 200),
])  # fmt: skip
def test_bad_requests_get_a_clear_4xx_without_traceback(runtime: Runtime, path: str,
                                                        status: int) -> None:  # fmt: skip
    response = logged_in(runtime).get(path)
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text


def test_bad_forms_are_refused(runtime: Runtime) -> None:
    client = logged_in(runtime)
    token = csrf_of(client.get("/jobs/daily_digest").text)
    bad = client.post("/jobs/daily_digest/backfill", data={"csrf": token, "from": "yesterday",
                                                            "to": "2026-01-01T00:00Z"})  # fmt: skip
    assert bad.status_code == 400 and "from" in bad.text
    big = client.post("/jobs/daily_digest/trigger", content=b"csrf=" + b"x" * 20000,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413
    assert client.get("/jobs/daily_digest/pause").status_code == 405


def test_a_session_ends_after_twelve_idle_hours(runtime: Runtime, clock: FrozenClock) -> None:
    client = logged_in(runtime)
    assert client.get("/").status_code == 200
    clock.advance(11 * 3600)
    assert client.get("/").status_code == 200  # in use: still open
    clock.advance(12 * 3600 + 1)
    expired = client.get("/")
    assert expired.status_code == 401 and "daily_digest" not in expired.text


def test_trigger_with_the_broker_down_is_a_clear_503(tmp_path: Path, clock: FrozenClock) -> None:
    (tmp_path / "beat_schedule.py").write_text(SCHEDULE)
    (tmp_path / "console_agents.py").write_text(AGENTS)
    settings = Settings(data_dir=tmp_path / "data", schedule_path=tmp_path / "beat_schedule.py",
                        broker_url="redis://127.0.0.1:1/0", lease_backend="sql")  # fmt: skip
    client = logged_in(Runtime(settings, clock))
    token = csrf_of(client.get("/jobs/daily_digest").text)
    response = client.post("/jobs/daily_digest/trigger", data={"csrf": token})
    assert response.status_code == 503 and "is the broker up?" in response.text
    assert "Traceback" not in response.text


def test_a_ledger_that_stops_answering_gives_a_503(runtime: Runtime) -> None:
    client = logged_in(runtime)
    runtime.ledger.engine.dispose()
    (runtime.settings.data_dir / "ledger.sqlite").unlink()
    (runtime.settings.data_dir / "ledger.sqlite").mkdir()  # a directory: SQLite cannot open it
    response = client.get("/jobs/daily_digest")
    assert response.status_code == 503 and "the ledger does not answer" in response.text


def test_job_page_shows_deliveries_with_targets_redacted(runtime: Runtime) -> None:
    from agentcron.delivery.outbox import Outbox
    from agentcron.ledger.engine import begin_write
    from agentcron.ledger.outputs import write_outputs
    from agentcron.reports.content import make_report

    now = runtime.clock.now()
    key = f"daily_digest@{now:%Y-%m-%dT%H:%M:%SZ}"
    hook = "https://hooks.example.com/services/T0/B0/tok-secret-path?token=hunter2"
    with begin_write(runtime.ledger.engine) as conn:
        write_outputs(conn, "daily_digest", key, [make_report("Digest", "body")],
                      ["mailto:team@example.com", hook], now)  # fmt: skip
    outbox = Outbox(runtime.ledger.engine, runtime.clock)
    claimed = {d.kind: d for d in outbox.claim("sender:1", 60)}
    assert outbox.mark_sent(claimed["email"], "sender:1")
    assert outbox.mark_failed(claimed["webhook"], "sender:1", "HTTP 404 from hooks.example.com")
    page = logged_in(runtime).get("/jobs/daily_digest").text
    assert "Deliveries" in page and "mailto:team@example.com" in page
    assert "https://hooks.example.com/…" in page and "HTTP 404 from hooks.example.com" in page
    assert 'data-state="sent"' in page and 'data-state="failed"' in page
    assert "tok-secret-path" not in page and "hunter2" not in page and "services" not in page
    assert "Deliveries" not in logged_in(runtime).get("/jobs/secret_named_job").text
