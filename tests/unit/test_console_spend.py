"""The console's spend, usage, dead letters and limits (issue 17's wiring), and `runs show`'s
usage: a real SQLite ledger and the embedded broker through Starlette's TestClient."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from agentcron.cli import main
from agentcron.clock import FrozenClock
from agentcron.console import create_app
from agentcron.deadletters import DeadLetterStore
from agentcron.ledger.records import NewWindow, RunState
from agentcron.limits import Limit
from agentcron.limits.sql import SqlLimitStore
from agentcron.runtime import Runtime
from agentcron.settings import Settings
from agentcron.spend.store import SpendStore
from agentcron.spend.usage import ModelUsage

TOKEN = "test-token-0123456789"
SCHEDULE = '''
from agentcron import Budget, Job, Limit

BUDGETS = [Budget("shared", cost_usd=2.0, per="day")]
LIMITS = [Limit("openai", concurrency=4, per_minute=60)]
JOBS = [
    Job("paris_job", agent="spend_agents:work", schedule="0 6 * * *", tz="Europe/Paris",
        budget={"cost_usd": 5.0, "per": "day"}),
    Job("utc_job", agent="spend_agents:work", schedule="0 6 * * *", budget="shared",
        limits=["openai"]),
    Job("plain_job", agent="spend_agents:work", schedule="*/5 * * * *"),
    Job("zz_sharing_job", agent="spend_agents:work", schedule="0 7 * * *", budget="shared"),
]
'''


@pytest.fixture
def runtime(tmp_path: Path, clock: FrozenClock) -> Iterator[Runtime]:
    (tmp_path / "beat_schedule.py").write_text(SCHEDULE)
    (tmp_path / "spend_agents.py").write_text("def work(ctx):\n    return 1\n")
    settings = Settings(data_dir=tmp_path / "data", schedule_path=tmp_path / "beat_schedule.py")
    made = Runtime(settings, clock)
    made.ledger.upgrade()
    yield made
    made.close()


def logged_in(runtime: Runtime, readonly: bool = False) -> TestClient:
    client = TestClient(create_app(runtime, TOKEN, readonly=readonly), follow_redirects=False)
    assert client.get(f"/?token={TOKEN}").status_code == 303
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def row_of(html: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr {attribute}="{re.escape(value)}".*?</tr>', html, re.S)
    assert found, f"no row {attribute}={value}"
    return found.group(0)


def record(runtime: Runtime, job: str, at: str, cost: float, tokens: tuple[int, int],
           model: str = "gpt-x", attempt: int = 1, window: str | None = None) -> None:  # fmt: skip
    when = datetime.fromisoformat(at)
    start = datetime.fromisoformat(window) if window else when
    key = f"{job}@{start:%Y-%m-%dT%H:%M:%SZ}"
    SpendStore(runtime.ledger.engine).record(
        job, start, key, attempt, {model: ModelUsage(tokens[0], tokens[1], cost, 1)}, when)


def test_jobs_page_shows_spend_since_local_midnight_and_budget_left(runtime: Runtime) -> None:
    # the clock is 2026-03-17T06:00Z: Paris's day began at 23:00Z on the 16th, UTC's at 00:00Z
    record(runtime, "paris_job", "2026-03-16T23:30:00+00:00", 0.5, (1000, 200))
    record(runtime, "paris_job", "2026-03-17T05:00:00+00:00", 0.25, (100, 50))
    record(runtime, "paris_job", "2026-03-16T22:30:00+00:00", 9.0, (9, 9))  # yesterday in Paris
    record(runtime, "utc_job", "2026-03-16T23:30:00+00:00", 7.0, (7, 7))  # yesterday in UTC
    record(runtime, "utc_job", "2026-03-17T01:00:00+00:00", 0.5, (400, 100))
    page = logged_in(runtime).get("/").text
    paris = row_of(page, "data-job", "paris_job")
    assert "$0.7500" in paris and "1,350 tokens" in paris
    assert "$4.25 of $5 left per day" in paris
    utc = row_of(page, "data-job", "utc_job")
    assert "$0.5000" in utc and "500 tokens" in utc and "$1.50 of $2 left per day" in utc
    assert 'title="budget shared"' in utc
    plain = row_of(page, "data-job", "plain_job")
    assert "$" not in plain and "left per" not in plain
    record(runtime, "zz_sharing_job", "2026-03-17T03:00:00+00:00", 0.25, (10, 10))
    alone = logged_in(runtime).get("/?q=utc_job").text  # the budget's other job is not shown
    assert "zz_sharing_job" not in alone
    assert "$1.25 of $2 left per day" in row_of(alone, "data-job", "utc_job")
    record(runtime, "utc_job", "2026-03-17T02:00:00+00:00", 1.5, (1, 1))
    spent = row_of(logged_in(runtime).get("/").text, "data-job", "utc_job")
    assert "$0.00 of $2 left per day" in spent and 'class="small error"' in spent


def test_jobs_page_reads_spend_in_one_query_for_the_whole_page(runtime: Runtime) -> None:
    client = logged_in(runtime)
    client.get("/")  # warm the catalogue
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(runtime.ledger.engine, "before_cursor_execute", seen)
    try:
        assert client.get("/").status_code == 200
    finally:
        sa.event.remove(runtime.ledger.engine, "before_cursor_execute", seen)
    assert len([s for s in statements if "run_usage" in s]) == 1, statements


def test_run_page_shows_usage_by_model_and_the_total(runtime: Runtime) -> None:
    start = "2026-03-17T05:00:00+00:00"
    key = "utc_job@2026-03-17T05:00:00Z"
    window = NewWindow("utc_job", datetime.fromisoformat(start), key, datetime.fromisoformat(start))
    runtime.ledger.claim(window, 5, "host:1", 3, running=True)
    runtime.ledger.complete("utc_job", window.window_start, 5, RunState.SUCCEEDED, duration=1.0)
    record(runtime, "utc_job", start, 0.125, (1000, 250), "gpt-x", 1, start)
    record(runtime, "utc_job", start, 0.5, (3000, 500), "claude-y", 2, start)
    record(runtime, "utc_job", start, 0.25, (500, 100), "gpt-x", 2, start)
    other = "2026-03-16T05:00:00+00:00"
    record(runtime, "utc_job", other, 9.0, (1, 1), "gpt-x", 1, other)  # another window
    page = logged_in(runtime).get(f"/runs/{key}").text
    gpt = re.search(r"<tr><td>gpt-x</td>.*?</tr>", page, re.S)
    assert gpt and "1,500" in gpt.group(0) and "350" in gpt.group(0) and "$0.3750" in gpt.group(0)
    assert "claude-y" in page and "$0.5000" in page
    total = re.search(r'<tr class="total">.*?</tr>', page, re.S)
    assert total and "4,500" in total.group(0) and "850" in total.group(0)
    assert "$0.8750" in total.group(0) and "$9" not in page
    empty_key = "plain_job@2026-03-17T05:55:00Z"
    empty = NewWindow("plain_job", datetime.fromisoformat("2026-03-17T05:55:00+00:00"), empty_key,
                      datetime.fromisoformat("2026-03-17T05:55:00+00:00"))  # fmt: skip
    runtime.ledger.record_scheduled([empty])
    assert "No usage reported." in logged_in(runtime).get(f"/runs/{empty_key}").text


def test_runs_show_prints_usage_and_cost(runtime: Runtime, tmp_path: Path) -> None:
    start = "2026-03-17T05:00:00+00:00"
    key = "utc_job@2026-03-17T05:00:00Z"
    runtime.ledger.record_scheduled([NewWindow("utc_job", datetime.fromisoformat(start), key,
                                               datetime.fromisoformat(start))])  # fmt: skip
    record(runtime, "utc_job", start, 0.125, (1000, 250), "gpt-x", 1, start)
    record(runtime, "utc_job", start, 0.5, (3000, 500), "claude-y", 1, start)
    env = {"AGENTCRON_DATA_DIR": str(tmp_path / "data")}
    shown = CliRunner().invoke(main, ["runs", "show", key], env=env)
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line for line in shown.output.splitlines()[1:] if line.startswith("  ")}
    assert "cost $0.1250" in lines["gpt-x"] and "input       1000" in lines["gpt-x"]
    assert "cost $0.6250" in lines["total"] and "output        750" in lines["total"]
    data = json.loads(CliRunner().invoke(main, ["runs", "show", key, "--json"], env=env).output)
    assert data["usage"]["total"] == {"input_tokens": 4000, "output_tokens": 750,
                                      "cost_usd": 0.625, "calls": 2}  # fmt: skip
    assert [m["model"] for m in data["usage"]["models"]] == ["claude-y", "gpt-x"]
    runtime.ledger.record_scheduled([NewWindow("plain_job", datetime.fromisoformat(start),
                                               "plain_job@2026-03-17T05:00:00Z",
                                               datetime.fromisoformat(start))])  # fmt: skip
    bare = CliRunner().invoke(main, ["runs", "show", "plain_job@2026-03-17T05:00:00Z"], env=env)
    assert "usage: (no usage reported" in bare.output


def letters(runtime: Runtime) -> DeadLetterStore:
    return DeadLetterStore(runtime.ledger.engine, clock=runtime.clock)


def test_fleet_page_shows_dead_letters_by_queue_and_kind_and_the_newest(runtime: Runtime) -> None:
    store = letters(runtime)
    store.add("undecodable: not JSON", "agentcron.sync", b"x" * 300 + b"sk-hidden-secret")
    store.add("unknown_task: evil.task", "agentcron.sync", b"{}")
    ids = [store.add(f"too_large: {n} bytes", "agentcron.async", b"y") for n in range(22)]
    page = logged_in(runtime).get("/fleet").text
    assert "(24 stored)" in page
    counts = re.search(r'<table class="dead-counts">.*?</table>', page, re.S)
    assert counts and re.search(r"agentcron.async</td><td>too_large</td><td class=\"num\">22<",
                                counts.group(0))  # fmt: skip
    assert "undecodable</td><td class=\"num\">1<" in counts.group(0)
    newest = re.findall(r'data-dead-letter="(\d+)"', page)
    assert [int(i) for i in newest] == ids[::-1][:20]
    assert "sk-hidden-secret" not in page and "xxxxxxxxxx" not in page  # never the raw entry
    newest_row = row_of(page, "data-dead-letter", str(ids[-1]))
    assert "too_large: 21 bytes" in newest_row and "2026-03-17 06:00:00Z" in newest_row
    assert "Requeue" in page and "Purge all dead letters" in page


def test_dead_letter_requeue_and_purge_need_csrf_and_confirmation(runtime: Runtime) -> None:
    store = letters(runtime)
    first = store.add("unknown_task: gone.task", "agentcron.sync", b'{"body": ""}')
    second = store.add("unknown_task: gone.task", "agentcron.sync", b'{"body": ""}')
    client = logged_in(runtime)
    token = csrf_of(client.get("/fleet").text)
    refused = client.post(f"/fleet/dead-letters/{first}/requeue", data={})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert client.post(f"/fleet/dead-letters/{first}/requeue",
                       data={"csrf": token + "x"}).status_code == 403  # fmt: skip
    assert client.post("/fleet/dead-letters/purge", data={"confirm": "purge"}).status_code == 403
    assert store.count() == 2
    done = client.post(f"/fleet/dead-letters/{first}/requeue", data={"csrf": token})
    assert done.status_code == 303 and done.headers["location"] == "/fleet"
    assert store.get(first) is None and store.count() == 1
    assert f"requeued dead letter #{first} onto agentcron.sync" in client.get("/fleet").text
    again = client.post(f"/fleet/dead-letters/{first}/requeue", data={"csrf": token})
    assert again.status_code == 404 and f"no dead letter #{first}" in again.text
    asked = client.post("/fleet/dead-letters/purge", data={"csrf": token})
    assert asked.status_code == 200 and "Delete all <strong>1</strong> dead letter(s)?" in asked.text
    assert store.count() == 1
    purged = client.post("/fleet/dead-letters/purge", data={"csrf": token, "confirm": "purge"})
    assert purged.status_code == 303 and store.get(second) is None
    assert "purged 1 dead letter(s)" in client.get("/fleet").text


def test_a_truncated_dead_letter_cannot_be_requeued(runtime: Runtime) -> None:
    small = DeadLetterStore(runtime.ledger.engine, raw_max_bytes=4, clock=runtime.clock)
    letter = small.add("too_large: big", "agentcron.sync", b"0123456789")
    client = logged_in(runtime)
    page = client.get("/fleet").text
    assert "stored truncated" in row_of(page, "data-dead-letter", str(letter))
    refused = client.post(f"/fleet/dead-letters/{letter}/requeue", data={"csrf": csrf_of(page)})
    assert refused.status_code == 409 and "truncated" in refused.text


@pytest.mark.parametrize("letter_id", ["abc", "0", "1" * 30, "-1", "1.5"])
def test_a_bad_dead_letter_id_is_a_400(runtime: Runtime, letter_id: str) -> None:
    client = logged_in(runtime)
    token = csrf_of(client.get("/jobs/plain_job").text)  # no dead letter: no form on /fleet
    response = client.post(f"/fleet/dead-letters/{letter_id}/requeue", data={"csrf": token})
    assert response.status_code == 400 and "not a dead letter id" in response.text
    assert "Traceback" not in response.text


def test_read_only_hides_and_refuses_dead_letter_actions(runtime: Runtime) -> None:
    letter = letters(runtime).add("unknown_task: gone.task", "agentcron.sync", b"{}")
    client = logged_in(runtime, readonly=True)
    page = client.get("/fleet").text
    assert f'data-dead-letter="{letter}"' in page
    assert "Requeue" not in page and "Purge" not in page and 'name="csrf"' not in page
    for path in (f"/fleet/dead-letters/{letter}/requeue", "/fleet/dead-letters/purge"):
        refused = client.post(path, data={"csrf": "anything", "confirm": "purge"})
        assert refused.status_code == 403 and "read-only" in refused.text
    assert letters(runtime).count() == 1


def test_fleet_page_shows_limits_with_holders_and_waiters(runtime: Runtime) -> None:
    limit = Limit("openai", concurrency=4, per_minute=60)
    store = SqlLimitStore(runtime.ledger.engine, runtime.clock)
    assert store.acquire_slot(limit, "utc_job@2026-03-17T06:00:00Z#1")
    store.mark_waiting(limit, "utc_job@2026-03-17T05:00:00Z#2", 60)
    row = row_of(logged_in(runtime).get("/fleet").text, "data-limit", "openai")
    assert "1/4" in row and "utc_job@2026-03-17T06:00:00Z#1" in row
    assert "waiting: utc_job@2026-03-17T05:00:00Z#2" in row and "per 60s" in row
    runtime.clock.advance(timedelta(minutes=5).total_seconds())  # type: ignore[attr-defined]
    later = row_of(logged_in(runtime).get("/fleet").text, "data-limit", "openai")
    assert "0/4" in later  # the slot's lease expired with its holder


def test_with_redis_down_the_fleet_page_renders_and_requeue_is_a_503(tmp_path: Path,
                                                                     clock: FrozenClock) -> None:  # fmt: skip
    (tmp_path / "beat_schedule.py").write_text(SCHEDULE)
    (tmp_path / "spend_agents.py").write_text("def work(ctx):\n    return 1\n")
    settings = Settings(data_dir=tmp_path / "data", schedule_path=tmp_path / "beat_schedule.py",
                        broker_url="redis://127.0.0.1:1/0", lease_backend="sql")  # fmt: skip
    runtime = Runtime(settings, clock)
    runtime.ledger.upgrade()
    letter = letters(runtime).add("unknown_task: gone.task", "agentcron.sync", b"{}")
    client = logged_in(runtime)
    fleet = client.get("/fleet")
    assert fleet.status_code == 200 and "heartbeats unavailable (ConnectionError)" in fleet.text
    token = csrf_of(fleet.text)
    response = client.post(f"/fleet/dead-letters/{letter}/requeue", data={"csrf": token})
    assert response.status_code == 503 and "is the broker up?" in response.text
    assert "Traceback" not in response.text and letters(runtime).get(letter) is not None
    runtime.close()


def test_fleet_page_still_renders_when_the_dead_letter_table_is_missing(runtime: Runtime) -> None:
    with runtime.ledger.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE dead_letters"))
    page = logged_in(runtime).get("/fleet")
    assert page.status_code == 200 and "dead letters unavailable" in page.text
    assert 'data-limit="openai"' in page.text and "Traceback" not in page.text


def test_budget_left_reads_well_for_tokens_windows_and_overspend() -> None:
    from agentcron.console.spending import JobSpend
    from agentcron.spend.budgets import Budget, Spent

    at = datetime.fromisoformat("2026-03-17T00:00:00+00:00")
    tokens = Budget("job:a", tokens=2_000_000, per="month")
    assert JobSpend(0.0, 0, tokens, Spent(tokens, at, at, 0.0, 500_000)).left == \
        "1,500,000 of 2,000,000 tokens left per month"
    both = Budget("b", cost_usd=1.0, tokens=100, per="week")
    over = JobSpend(0.0, 0, both, Spent(both, at, at, 1.5, 20))
    assert over.left == "$0.00 of $1 and 80 of 100 tokens left per week" and over.exhausted
    window = Budget("job:c", cost_usd=0.5, per="window")
    assert JobSpend(0.0, 0, window, None).left == "$0.5 per window"
    assert JobSpend(0.0, 0).left is None and not JobSpend(0.0, 0).exhausted
